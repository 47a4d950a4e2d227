"""Write (or check) the committed OpenAPI document, generated from the code: `python -m local.openapi [--check]`."""

from __future__ import annotations

import argparse
import json
import sys

from local.generated import ROOT, write_or_check

OPENAPI_PATH = ROOT / "docs" / "openapi.json"


def generate() -> str:
    """The OpenAPI document of every route (both HTTP functions), as committed text."""
    from local.server import combined_app

    return json.dumps(combined_app().openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/openapi.json is out of date")
    args = parser.parse_args(argv)
    return write_or_check(OPENAPI_PATH, generate(), check=args.check, command="python -m local.openapi")


if __name__ == "__main__":
    sys.exit(main())
