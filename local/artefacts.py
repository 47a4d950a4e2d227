"""The Lambda artefacts as `sam build` makes them (local/lambda_build.py), built outside SAM for the
tests and the benchmark: ``python -m local.artefacts [--arch arm64|x86_64]`` prints where and how big.

A build is cached under ``~/.cache/agent-chat-backend/artefacts/<arch>-<hash of its inputs>`` (the
layers' requirements and code, the functions' code, the build script): a second run is instant.
The build runs in the SAM CLI's Python 3.13 (it has pip; the project's venv does not).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# logical id -> (kind, source): what the chat, api, events and account functions run with
PARTS = {
    "CoreLayer": ("layer", "layers/core"),
    "AgentsLayer": ("layer", "layers/agents"),
    "IdentityLayer": ("layer", "layers/identity"),
    "ChatFunction": ("function", "functions/chat"),
    "ApiFunction": ("function", "functions/api"),
    "EventsFunction": ("function", "functions/events"),
    "AccountFunction": ("function", "functions/account"),
}
# where Lambda puts each part: layers' python/ under /opt, the function's code in /var/task
CHAT = ("ChatFunction", "AgentsLayer/python", "CoreLayer/python")
API = ("ApiFunction", "CoreLayer/python")
EVENTS = ("EventsFunction", "IdentityLayer/python", "CoreLayer/python")
ACCOUNT = ("AccountFunction", "CoreLayer/python")
# A build of other inputs (another checkout, an older commit) unused for this long is removed.
STALE_BUILD_SECONDS = 24 * 3600
ELF_MACHINES = {183: "arm64", 62: "x86_64"}  # e_machine: EM_AARCH64, EM_X86_64


def native_architecture() -> str:
    return {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")


def _inputs_hash(arch: str) -> str:
    digest = hashlib.sha256(arch.encode())
    files = [ROOT / "local/lambda_build.py"]
    for _, source in PARTS.values():
        files += sorted(p for p in (ROOT / source).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build(arch: str | None = None, *, quiet: bool = True) -> Path:
    """The artefacts for ``arch`` (default: this machine's, so they can be imported here)."""
    from local import sam_cli

    arch = arch or native_architecture()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agent-chat-backend" / "artefacts"
    root = cache / f"{arch}-{_inputs_hash(arch)}"
    if (root / ".complete").exists():
        (root / ".complete").touch()  # in use: kept
        return root
    # Built beside its final place and moved there whole, so a build that another checkout (or a
    # test run at the same time) is reading is never half there; builds of other inputs are removed
    # once nothing has used them for a day.
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{arch}-*"):
        if old != root and time.time() - _last_used(old) > STALE_BUILD_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    building = Path(tempfile.mkdtemp(prefix=f".{arch}-building-", dir=cache))
    try:
        python = sam_cli.tool_python()
        env = {**sam_cli.environment(python.parent.parent), "LAMBDA_ARCHITECTURE": arch}
        for name, (kind, source) in PARTS.items():
            if not quiet:
                print(f"artefacts: building {name} for {arch}", file=sys.stderr, flush=True)
            r = subprocess.run([str(python), str(ROOT / "local/lambda_build.py"), kind, str(ROOT / source),
                                str(building / name)], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"building {name} failed:\n{r.stdout}{r.stderr}")
        (building / ".complete").write_text(arch)
        try:
            building.rename(root)
        except OSError:  # the same inputs were built at the same time elsewhere: theirs is used
            if not (root / ".complete").exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    (root / ".complete").touch()
    return root


def _last_used(build: Path) -> float:
    try:
        return (build / ".complete").stat().st_mtime
    except OSError:
        return build.stat().st_mtime if build.exists() else 0.0


def size_bytes(path: Path) -> int:
    """Unzipped size: the sum of the files' sizes (what Lambda's 250 MB limit counts)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name != ".complete")


def elf_architectures(path: Path) -> dict[str, set[str]]:
    """Every native library under ``path`` by the architecture its ELF header names."""
    found: dict[str, set[str]] = {}
    for p in path.rglob("*"):
        if p.is_file() and (p.suffix == ".so" or ".so." in p.name):
            with p.open("rb") as f:
                header = f.read(20)
            if header[:4] == b"\x7fELF":
                machine = ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "other")
                found.setdefault(machine, set()).add(str(p.relative_to(path)))
    return found


def import_command(root: Path, parts: tuple[str, ...], code: str, *, verbose: bool = False) -> list[str]:
    """A Python that sees only the built ``parts`` (no site-packages) and writes no bytecode, as on
    Lambda's read-only code directories, running ``code``."""
    path = ", ".join(repr(str(root / part)) for part in parts)
    return [sys.executable, "-B", "-S", *(["-v"] if verbose else []), "-c",
            f"import sys; sys.path[:0] = [{path}]\n{code}"]


def import_env() -> dict[str, str]:
    """What the functions read at import (nothing connects: no database or bucket is touched)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "MEDIA_BUCKET": "none",
                "AWS_REGION": "us-east-1", "POWERTOOLS_METRICS_NAMESPACE": "AgentChat"})
    return env


def check_architecture(build_dir: Path, arch: str, names: list[str]) -> list[str]:
    """The native libraries of the built ``names`` (folders of ``build_dir``) that are not for ``arch``."""
    wrong = []
    for name in names:
        found = elf_architectures(build_dir / name)
        if not found:
            wrong.append(f"{name}: no native library (not built?)")
        wrong += [f"{name}/{lib} is {machine}" for machine, libs in found.items() if machine != arch for lib in sorted(libs)]
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.artefacts", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("arm64", "x86_64"), default=None)
    parser.add_argument("--check", metavar="BUILD_DIR", type=Path,
                        help="only check that the built layers' native libraries are all for --arch")
    parser.add_argument("--layers", nargs="+", default=["CoreLayer", "AgentsLayer", "IdentityLayer"],
                        help="with --check: which")
    args = parser.parse_args(argv)
    if args.check:
        wrong = check_architecture(args.check, args.arch or "arm64", args.layers)
        for line in wrong[:10]:
            print(f"artefacts: {line}", file=sys.stderr)
        print(f"artefacts: {args.check}: {'NOT ' if wrong else ''}all {args.arch or 'arm64'}", file=sys.stderr)
        return 1 if wrong else 0
    root = build(args.arch, quiet=False)
    for name in PARTS:
        print(f"{name:16} {size_bytes(root / name) / 1e6:7.1f} MB")
    chat = sum(size_bytes(root / p.split("/")[0]) for p in CHAT)
    print(f"{'chat + layers':16} {chat / 1e6:7.1f} MB  ({root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
