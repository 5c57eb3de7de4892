"""detect-secrets on the files given, without ever printing a secret: ``inv lint``'s seventh tool.

Run as a script (``python scan_secrets.py [--baseline FILE] -- FILE...``) by the lint tasks, in
the tree being linted (a checkout or a commit's snapshot); this directory holds nothing else, so
the script's directory on ``sys.path`` shadows no module. detect-secrets' own CLI prints either
the secrets' hashes (``scan``, which also rewrites a baseline it is given) or nothing per line
(``detect-secrets-hook``); README's promise that a finding names the line and shows only the
first and last characters of what was found needs the values, hence its Python API here.

With ``.secrets.baseline`` in the working directory (or ``--baseline``), the plugins and filters
it records are used and a secret it lists for that file (same type and hash; the line may have
moved, as detect-secrets-hook compares) is let through. Output: one line per finding,
``path:line:1: <type>: <first 2>…<last 2> (<n> characters)``; exit 1 when there are any, 0
when none, 2 when the baseline cannot be read.
"""

from __future__ import annotations

import argparse
import os
import sys

BASELINE = ".secrets.baseline"


def mask(value: str) -> str:
    """The first and last two characters of a secret of 12 or more, else nothing of it."""
    shown = f"{value[:2]}…{value[-2:]}" if len(value) >= 12 else "…"
    return f"{shown} ({len(value)} characters)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scan_secrets")
    parser.add_argument("--baseline", default=None)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    from detect_secrets import SecretsCollection
    from detect_secrets.core import baseline as ds_baseline
    from detect_secrets.settings import default_settings

    path = args.baseline if args.baseline is not None else BASELINE
    known: set[tuple[str, str, str]] = set()
    with default_settings():
        if os.path.isfile(path):
            try:
                listed = ds_baseline.load(ds_baseline.load_from_file(path), path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(
                    f"{path}: error: not a detect-secrets baseline: {exc.__cause__ or exc}",
                    file=sys.stderr,
                )
                return 2
            known = {(os.path.normpath(f), s.type, s.secret_hash) for f, s in listed}
        found = SecretsCollection()
        for name in args.files:
            found.scan_file(name)
    count = 0
    for name, secret in sorted(found, key=lambda item: (item[0], item[1].line_number)):
        if (os.path.normpath(name), secret.type, secret.secret_hash) in known:
            continue
        value = secret.secret_value or ""
        print(f"{name}:{secret.line_number}:1: {secret.type}: {mask(value)}")
        count += 1
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
