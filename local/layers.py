"""The Lambda layers' requirements.txt, exported from uv.lock: `python -m local.layers [--check]`.

SAM builds each layer (``BuildMethod: python3.13``) by pip-installing its ``requirements.txt``. Each
file is the FULL locked closure of what that layer ships, so pip resolves nothing on its own and a
package both layers carry has the same version in both:

- ``layers/core``: chatcore plus the lean dependencies every function imports (psycopg, powertools,
  fastapi, uvicorn, boto3): the project's dependencies with agno and the model SDK pruned;
- ``layers/agents``: agno, the anthropic SDK and Pillow (with pi-heif, HEIF decoding only) and pypdf, for the chat function only (the api, events,
  rollup, account and migrate functions never carry them). The chat function carries both layers, so whatever the core layer
  already ships (pydantic, anyio, typing-extensions...) is left out of this one: nothing ships twice;
- ``layers/identity``: PyJWT with cryptography, for the events function only (it checks bearer tokens
  against the user pool itself, ``chatcore.web.cognito``), beside the core layer likewise.

Neither ships what no function imports: agno's command-line companion ``agnoctl`` (and with it typer,
questionary, prompt-toolkit, wcwidth, shellingham) is pruned (``CLI_ONLY``).

``--check`` exits 1 when a file differs from what the lock gives (the tests run it too).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from local.generated import ROOT, write_or_check

# Direct dependencies (pyproject) pruned from each layer's export, with everything only they need.
LAYERS: dict[str, tuple[str, ...]] = {
    "layers/core": ("agno", "anthropic", "filetype", "httpx", "genai-prices", "pillow", "pi-heif", "pypdf", "pyjwt"),
    "layers/agents": ("aws-lambda-powertools", "boto3", "psycopg", "psycopg-pool", "uuid6", "fastapi", "uvicorn",
                      "genai-prices", "pyjwt"),
    # PyJWT and cryptography (~15 MB), for the events function alone: it checks bearer tokens itself
    "layers/identity": ("agno", "anthropic", "filetype", "httpx", "genai-prices", "pillow", "pi-heif", "pypdf",
                        "aws-lambda-powertools", "boto3", "psycopg", "psycopg-pool", "uuid6", "fastapi", "uvicorn",
                        "pydantic"),
}
# Direct dependencies no function needs at run time (prices are pinned into chatcore/money/prices.json).
LOCAL_ONLY = ("genai-prices",)
# Packages in the lock that no function imports: agno's CLI companion and what only it needs.
CLI_ONLY = ("agnoctl",)
# The chat function carries core and agents, the events function core and identity: each leaves out
# what the core layer ships.
BENEATH = {"layers/agents": "layers/core", "layers/identity": "layers/core"}


def find_uv() -> list[str]:
    """The uv command: $UV, uv on PATH, the bootstrap's .local/uv, or `python -m uv`."""
    candidates = [os.environ.get("UV"), shutil.which("uv"), str(ROOT / ".local/uv/bin/uv")]
    for c in candidates:
        if c and Path(c).exists() and subprocess.run([c, "--version"], capture_output=True).returncode == 0:
            return [c]
    if subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "uv"]
    raise RuntimeError("uv not found: set UV or run a bin/ command once (it installs uv)")


def export_command(layer: str) -> list[str]:
    prunes = [arg for name in (*LAYERS[layer], *CLI_ONLY) for arg in ("--prune", name)]
    return ["export", "--frozen", "--no-dev", "--no-emit-project", *prunes,
            "-o", f"{layer}/requirements.txt"]


def requirement_blocks(text: str) -> list[tuple[str, str]]:
    """``uv export`` text as (package name, its block of lines) pairs, in order; the header has name ''."""
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines(keepends=True):
        match = re.match(r"^([A-Za-z0-9_.-]+)==", line)
        if match:
            blocks.append((match.group(1).lower(), []))
        blocks[-1][1].append(line)
    return [(name, "".join(lines)) for name, lines in blocks]


def exported(layer: str) -> str:
    """What ``layer``'s requirements.txt holds: ``uv export`` of its part of the lock, without what the
    layer beneath it ships."""
    text = _uv_export(layer)
    if layer in BENEATH:
        below = {name for name, _ in requirement_blocks(_uv_export(BENEATH[layer]))}
        text = "".join(block for name, block in requirement_blocks(text) if not name or name not in below)
    return text


def _uv_export(layer: str) -> str:
    """What ``uv export`` writes for ``layer`` (run on a copy of the lock, so nothing is touched)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("pyproject.toml", "uv.lock"):
            shutil.copy(ROOT / name, Path(tmp) / name)
        (Path(tmp) / layer).mkdir(parents=True)
        env = {**os.environ, "UV_NO_PROGRESS": "1"}
        env.pop("VIRTUAL_ENV", None)
        subprocess.run([*find_uv(), *export_command(layer), "--quiet"], cwd=tmp, env=env, check=True,
                       capture_output=True)
        return (Path(tmp) / layer / "requirements.txt").read_text()


def direct_dependencies() -> list[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower() for d in deps]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.layers", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    statuses = [write_or_check(ROOT / layer / "requirements.txt", exported(layer), check=args.check,
                               command="python -m local.layers") for layer in LAYERS]
    return max(statuses)


if __name__ == "__main__":
    sys.exit(main())
