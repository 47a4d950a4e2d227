"""The AWS SAM CLI in its own tool environment: `bin/sam ARGS` (`bin/sam validate --lint`, `bin/sam build`).

The SAM CLI pins many packages (its own pydantic, boto3, cfn-lint...), so it lives in a venv of its own,
outside the project's, made once with Python 3.13 and reused (``$SAM_HOME``, default
``~/.cache/agent-chat-backend/sam-cli-<version>``). That venv's ``python3.13`` goes first on PATH,
because ``sam build`` builds python3.13 functions and layers with the python3.13 it finds there
(no Docker needed). The tests use its ``samtranslator`` and ``cfn-lint`` too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAM_VERSION = "1.170.0"


def sam_home() -> Path:
    if os.environ.get("SAM_HOME"):
        return Path(os.environ["SAM_HOME"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "agent-chat-backend" / f"sam-cli-{SAM_VERSION}"


def _base_python() -> str:
    """A Python 3.13 that can make a venv with pip (the project's venv has no pip)."""
    for candidate in (getattr(sys, "_base_executable", None), Path(sys.base_prefix) / "bin" / "python3.13",
                      sys.executable):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("no Python 3.13 interpreter found for the SAM CLI")


def ensure() -> Path:
    """The SAM CLI venv, installed (from PyPI, with pip's cache) if missing or of another version."""
    home = sam_home()
    marker = home / ".installed"
    if marker.exists() and marker.read_text().strip() == SAM_VERSION and (home / "bin" / "sam").exists():
        return home
    print(f"sam: installing aws-sam-cli=={SAM_VERSION} into {home} (once)", file=sys.stderr, flush=True)
    subprocess.run([_base_python(), "-m", "venv", "--clear", str(home)], check=True)
    pip = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", f"aws-sam-cli=={SAM_VERSION}"], capture_output=True, text=True)
    if pip.returncode != 0:
        sys.stderr.write(pip.stdout + pip.stderr)
        raise SystemExit(f"sam: installing aws-sam-cli=={SAM_VERSION} failed")
    marker.write_text(SAM_VERSION)
    return home


def environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("SAM_CLI_TELEMETRY", "0")
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def tool_python() -> Path:
    """The SAM venv's interpreter (samtranslator, cfn-lint), installing the venv if needed."""
    return ensure() / "bin" / "python"


def architecture(args: list[str]) -> str | None:
    """The ``Architecture=`` of ``--parameter-overrides`` in a sam command line, if any."""
    import re

    for i, arg in enumerate(args):
        values = []
        if arg.startswith("--parameter-overrides="):
            values = [arg.split("=", 1)[1]]
        elif arg == "--parameter-overrides":
            values = [a for a in args[i + 1:] if not a.startswith("--")][:50]
        for value in values:
            match = re.search(r"(?:^|[\s,])(?:ParameterKey=)?Architecture(?:=|,ParameterValue=)([a-z0-9_]+)", value)
            if match:
                return match.group(1)
    return None


def main(argv: list[str] | None = None) -> int:
    home = ensure()
    args = sys.argv[1:] if argv is None else argv
    env = environment(home)
    # the Makefile builds for LAMBDA_ARCHITECTURE: the same as the template's Architecture parameter
    arch = architecture(args)
    if arch:
        env["LAMBDA_ARCHITECTURE"] = arch
    os.execve(str(home / "bin" / "sam"), [str(home / "bin" / "sam"), *args], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
