"""Write (or check) the committed OpenAPI document, generated from the code: `python -m local.openapi [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_PATH = ROOT / "docs" / "openapi.json"


def generate() -> str:
    """The OpenAPI document of every route (both HTTP functions), as committed text."""
    from local.server import combined_app

    return json.dumps(combined_app().openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/openapi.json is out of date")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if not OPENAPI_PATH.exists() or OPENAPI_PATH.read_text() != text:
            print("docs/openapi.json is out of date: run `python -m local.openapi`", file=sys.stderr)
            return 1
        print("docs/openapi.json is up to date")
        return 0
    OPENAPI_PATH.write_text(text)
    print(f"wrote {OPENAPI_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
