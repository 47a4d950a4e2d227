"""Files committed to the repository but generated from the code or the lock (docs/openapi.json, the
settings table of docs/operations.md, the layers' requirements.txt, the Postgres CA bundle): each
``python -m local.<tool>`` writes its file, and with ``--check`` only compares, exiting 1 when stale."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_or_check(path: Path, text: str, *, check: bool, command: str) -> int:
    """Make the generated file ``path`` hold ``text``, or with ``check`` only compare. Returns the exit
    status: 1 when checking finds the file stale or missing (said on stderr, with the ``command`` that
    writes it), else 0. A file already up to date is left alone."""
    name = path.relative_to(ROOT)
    if path.exists() and path.read_text() == text:
        print(f"{name} is up to date")
        return 0
    if check:
        print(f"{name} is stale: run `{command}`", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {name}")
    return 0
