"""Builds one function or layer the way Lambda runs it: `sam build` calls this through the Makefile
(SAM's ``makefile`` build method, no Docker) as ``python3.13 local/lambda_build.py KIND SOURCE ARTIFACTS_DIR``.

Why not SAM's own ``python3.13`` build method: it ships no bytecode. Lambda's code directories
(/var/task, /opt) are read-only, so a package without ``.pyc`` files is compiled from source at every
cold start and the result thrown away (measured: the chat function imported in 4.3-6.3 s as SAM built
it, 2.0-2.6 s with bytecode). Here:

- a layer's ``requirements.txt`` (the locked closure from ``python -m local.layers``, with hashes) is
  installed with pip for Lambda's platform: CPython 3.13 on Amazon Linux 2023 (glibc 2.34), for
  ``LAMBDA_ARCHITECTURE`` (``arm64``, the default, or ``x86_64``), wheels only, no dependency
  resolution (the file is the whole closure), into ``python/``; the layer's own code (chatcore)
  goes beside it;
- a function's folder is copied as it is (without caches);
- everything is compiled to bytecode with ``unchecked-hash`` invalidation: the ``.pyc`` is used
  without comparing the source's modification time, which the zip and Lambda's extraction do not
  keep exactly (a timestamp ``.pyc`` would be judged stale and recompiled at every cold start).
  Code objects name their file where Lambda puts it (/opt/python/..., /var/task/...), so tracebacks
  in the logs point at the real paths.

Only the standard library and pip are used: this runs in the SAM CLI's own Python 3.13.
"""

from __future__ import annotations

import compileall
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
GLIBC = 34  # Amazon Linux 2023 (glibc 2.34), the python3.13 runtime's OS
# What never runs on Lambda: console scripts, caches, this build's own inputs.
SKIP = ("__pycache__", "*.pyc", "Makefile", "requirements.txt")
RUNTIME_DIRS = {"layer": "/opt/python", "function": "/var/task"}
# The project's own code keeps its source beside the bytecode (tracebacks with source lines).
OWN_CODE = ("chatcore",)
# botocore's service models (22 MB, 440 services): only those the functions call stay ("lambda":
# the API function hands account jobs to the account function, chatcore.account.jobs; "sns": push
# notifications, chatcore.notify.sns).
# tests/infra/test_artefacts.py checks this against every boto3 client the code makes.
BOTOCORE_SERVICES = ("s3", "rds", "secretsmanager", "sts", "lambda", "sns")


def architecture() -> str:
    arch = os.environ.get("LAMBDA_ARCHITECTURE", "arm64")
    if arch not in ARCHITECTURES:
        raise SystemExit(f"LAMBDA_ARCHITECTURE must be one of {', '.join(ARCHITECTURES)}, not {arch!r}")
    return arch


def platforms(arch: str) -> list[str]:
    """pip's --platform for every manylinux wheel Lambda's glibc runs (pip does not infer older ones)."""
    machine = ARCHITECTURES[arch]
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC, 4, -1)] + [f"manylinux2014_{machine}"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def pip_install(requirements: Path, target: Path, arch: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile", "--no-deps", "--require-hashes", "--only-binary=:all:",
               "--implementation", "cp", "--python-version", "3.13",
               *platforms(arch),
               "--target", str(target), "-r", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"lambda_build: pip could not install {requirements} for {arch}")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them on Lambda
    prune_botocore(target)


def prune_botocore(target: Path) -> None:
    data = target / "botocore" / "data"
    if not data.is_dir():
        return
    for service in data.iterdir():
        if service.is_dir() and service.name not in BOTOCORE_SERVICES:
            shutil.rmtree(service)


def copy_source(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*SKIP), dirs_exist_ok=True)


def compile_bytecode(root: Path, runtime_dir: str, *, sourceless: bool = False) -> None:
    """Every .py under ``root`` to __pycache__/*.cpython-313.pyc, checked by nothing but its presence;
    with ``sourceless``, the dependencies' modules become bare ``.pyc`` in place of their ``.py``."""
    if sys.version_info[:2] != (3, 13):
        raise SystemExit(f"lambda_build: bytecode must be compiled by Python 3.13 (Lambda's), not {sys.version.split()[0]}")
    for path in root.rglob("__pycache__"):
        shutil.rmtree(path)
    own = [root / name for name in OWN_CODE if (root / name).is_dir()] if sourceless else [root]
    ok = True
    for top in own:
        ok &= compileall.compile_dir(top, quiet=1, workers=0, stripdir=str(root), prependdir=runtime_dir,
                                     invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    if sourceless:
        for source in [p for p in root.rglob("*.py") if not any(p.is_relative_to(t) for t in own)]:
            compiled = source.with_suffix(".pyc")
            try:
                py_compile.compile(str(source), cfile=str(compiled), doraise=True,
                                   dfile=f"{runtime_dir}/{source.relative_to(root)}",
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError as e:
                print(f"lambda_build: {e.msg}", file=sys.stderr)
                ok = False
                continue
            source.unlink()
    if not ok:
        raise SystemExit(f"lambda_build: some modules under {root} do not compile")


def build(kind: str, source: Path, artifacts: Path) -> None:
    arch = architecture()
    if kind == "layer":
        target = artifacts / "python"
        target.mkdir(parents=True, exist_ok=True)
        if (source / "requirements.txt").exists():
            pip_install(source / "requirements.txt", target, arch)
    elif kind == "function":
        target = artifacts
    else:
        raise SystemExit(f"lambda_build: KIND is layer or function, not {kind!r}")
    copy_source(source, target)
    # Size: both layers and the chat function must stay within 121 MB unzipped (Lambda's limit is
    # 250 MB), and bytecode beside every dependency's source would add 50 MB. A dependency's source
    # is never read on Lambda (its tracebacks still name the file and line of the locked version).
    compile_bytecode(target, RUNTIME_DIRS[kind], sourceless=kind == "layer")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    kind, source, artifacts = argv
    build(kind, Path(source).resolve(), Path(artifacts).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
