"""The plumbing every topic uses, and nothing topic-specific.

``errors`` (the project's error types), ``task`` (the task decorator: one definition per task,
flags converted by the schema, the boundary around the body), ``boundary`` (errors become one
line and an exit code; cleanups; signals), ``schema`` (declarative settings: defaults and
validation of config keys and flags alike), ``configload`` (config files and ``INVOKE_*``
variables loaded strictly), ``runner`` (every child process), ``secrets`` (secrets never on
disk; the per-run private directory), ``jsonl`` (append-only JSON lines), ``locks`` (one
operation at a time), ``environments`` (``--env`` / ``--namespace``), ``steps`` (plan steps
and their progress lines), ``prompt`` (confirmation).
"""
