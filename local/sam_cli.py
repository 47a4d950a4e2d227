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


# ---------------------------------------------------------------- deploy: DeployId

# What the versioned functions run: a DeployId digest covers these built folders, the built template
# and the parameter values given to the deploy.
VERSIONED = ("ChatFunction", "MigrateFunction", "CoreLayer", "AgentsLayer")


def parse_overrides(text: str) -> dict[str, str]:
    """``--parameter-overrides`` as SAM reads it: ``Key=Value`` pairs (shell-quoted) or
    ``ParameterKey=K,ParameterValue=V``."""
    import re
    import shlex

    values: dict[str, str] = {}
    for token in shlex.split(text):
        match = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", token)
        key, value = match.groups() if match else token.split("=", 1) if "=" in token else (token, "")
        values[key] = value
    return values


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _without_overrides(args: list[str]) -> tuple[list[str], list[str] | None]:
    """The arguments without ``--parameter-overrides`` and its values, and those values (None: absent)."""
    kept, values, i = [], None, 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--parameter-overrides="):
            values = (values or []) + [arg.split("=", 1)[1]]
        elif arg == "--parameter-overrides":
            values = values or []
            while i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                values.append(args[i])
        else:
            kept.append(arg)
        i += 1
    return kept, values


def config_overrides(args: list[str], root: Path) -> dict[str, str]:
    """The parameter overrides samconfig.toml gives this deploy (``--config-file``, ``--config-env``)."""
    import tomllib

    path = root / (_option(args, "--config-file") or "samconfig.toml")
    if not path.exists():
        return {}
    config = tomllib.loads(path.read_text()).get(_option(args, "--config-env") or "default", {})
    for section in ("deploy", "global"):
        text = config.get(section, {}).get("parameters", {}).get("parameter_overrides")
        if text:
            return parse_overrides(text if isinstance(text, str) else " ".join(text))
    return {}


def deploy_id(build_dir: Path, overrides: dict[str, str]) -> str:
    """A digest of what the chat and migration functions would run after this deploy: the built
    template, their built code and layers, and the parameter values the deploy gives. A parameter the
    deploy does not give keeps its previous value (sam deploy says UsePreviousValue), so these cover
    every change. Same build and same values, same digest: an unchanged deploy publishes nothing."""
    import hashlib

    digest = hashlib.sha256()
    digest.update((build_dir / "template.yaml").read_bytes())
    for name in VERSIONED:
        folder = build_dir / name
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else ():
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    for key in sorted(k for k in overrides if k != "DeployId"):
        digest.update(f"{key}={overrides[key]}\0".encode())
    return digest.hexdigest()[:32]


def with_deploy_id(args: list[str], root: Path) -> list[str]:
    """``sam deploy`` arguments with ``DeployId`` added to the parameter overrides (those of the command
    line, else samconfig's), so that a change of a parameter alone publishes new versions."""
    import time

    template = _option(args, "--template-file", "--template", "-t")
    build_dir = (root / template).parent if template else root / ".aws-sam" / "build"
    if not (build_dir / "template.yaml").exists():
        raise SystemExit(f"sam: no built template in {build_dir}: run bin/sam build first")
    kept, given = _without_overrides(args)
    overrides = parse_overrides(" ".join(given)) if given is not None else config_overrides(args, root)
    overrides.pop("DeployId", None)
    built, wanted = built_architecture(build_dir), overrides.get("Architecture")
    if built and wanted and built != wanted:
        raise SystemExit(f"sam: the build in {build_dir} is for {built} but this deploy says Architecture={wanted}: "
                         f"run bin/sam build --parameter-overrides Architecture={wanted}")
    digest = deploy_id(build_dir, overrides)
    if "--guided" in args or "-g" in args:
        # the answers are not known yet: a fresh id, so the versions follow whatever they are
        digest = deploy_id(build_dir, {**overrides, "guided-at": str(time.time_ns())})
    print(f"sam: DeployId={digest} (a new id publishes new chat and migrate versions)", file=sys.stderr)
    return [*kept, "--parameter-overrides", *(f"{k}={quote_value(v)}" for k, v in overrides.items()),
            f"DeployId={digest}"]


def quote_value(value: str) -> str:
    """A parameter value as SAM's ``--parameter-overrides`` reads it (double quotes when needed)."""
    import re

    if value and re.fullmatch(r'[^\s"\'\\]+', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- build: one cache per architecture

def build_architecture(args: list[str], root: Path) -> str:
    """The architecture a build is for: ``--parameter-overrides Architecture=...``, else samconfig's
    (what the deploy will say), else the template's default, arm64."""
    return architecture(args) or config_overrides(args, root).get("Architecture") or "arm64"


def with_cache_per_architecture(args: list[str], arch: str) -> list[str]:
    """``sam build`` arguments whose cache is the architecture's own: SAM keys a cached Makefile build
    on its source folder only, so an x86_64 build would reuse the arm64 layers of the same sources."""
    given = _option(args, "--cache-dir")
    kept = [a for i, a in enumerate(args)
            if not (a == "--cache-dir" or a.startswith("--cache-dir=") or (i and args[i - 1] == "--cache-dir"))]
    return [*kept, "--cache-dir", str(Path(given or ".aws-sam/cache") / arch)]


def built_architecture(build_dir: Path) -> str | None:
    """The architecture the built core layer's native libraries are for (None: nothing built)."""
    from local.artefacts import elf_architectures

    found = elf_architectures(build_dir / "CoreLayer") if (build_dir / "CoreLayer").is_dir() else {}
    return next(iter(found)) if len(found) == 1 else ("mixed" if found else None)


def main(argv: list[str] | None = None) -> int:
    home = ensure()
    args = sys.argv[1:] if argv is None else argv
    env = environment(home)
    root = Path.cwd()
    if args and args[0] == "build":
        # the Makefile builds for LAMBDA_ARCHITECTURE: the same as the template's Architecture parameter
        arch = build_architecture(args, root)
        env["LAMBDA_ARCHITECTURE"] = arch
        args = with_cache_per_architecture(args, arch)
        print(f"sam: building for {arch} (cache {_option(args, '--cache-dir')})", file=sys.stderr)
    elif architecture(args):
        env["LAMBDA_ARCHITECTURE"] = architecture(args) or ""
    if args and args[0] == "deploy":
        args = with_deploy_id(args, root)
    os.execve(str(home / "bin" / "sam"), [str(home / "bin" / "sam"), *args], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
