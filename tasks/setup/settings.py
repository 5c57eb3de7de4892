"""The ``setup`` config key: what ``inv setup --env development`` installs and writes."""

from __future__ import annotations

from tasks.core.settings import FilePath, Section

SCHEMA = Section(
    {
        "backend_requirements": FilePath(
            "examples/backend/requirements.txt", "pip requirements of the backend", kind="file"
        ),
        "frontend_dir": FilePath(
            "examples/frontend", "where npm ci runs (when package-lock.json exists)", kind="dir"
        ),
        "env_template": FilePath(
            ".env.template",
            "template of .env.local (@generate@ values become secrets)",
            kind="file",
        ),
        "dev_start_script": FilePath(
            "dev-start.sh", "the old entry point, now exec inv dev.start", kind="file"
        ),
    }
)
