"""The built Lambda artefacts (local/lambda_build.py, as `sam build` runs it through the Makefile):
bytecode for every module, used without compiling anything from a read-only directory; wheels of
the right architecture; nothing CLI-only; within the size budget.

The artefacts are built here outside SAM (local/artefacts.py, cached by their inputs): arm64, as
deployed by default, and this machine's own architecture, so that they can be imported here."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess

import pytest

from local import artefacts, lambda_build
from local.invoke import ROOT


@pytest.fixture(scope="module")
def arm64():
    return artefacts.build("arm64")


@pytest.fixture(scope="module")
def native():
    return artefacts.build()


def _pyc_flags(path) -> int:
    return int.from_bytes(path.read_bytes()[4:8], "little")


def test_every_module_ships_as_bytecode_checked_by_nothing_but_its_presence(arm64):
    for part in artefacts.PARTS:
        root = arm64 / part
        sources = list(root.rglob("*.py"))
        for source in sources:
            # only the project's own code keeps its source (tracebacks), with its bytecode beside it
            rel = source.relative_to(root)
            assert part.endswith("Function") or rel.parts[:2] == ("python", "chatcore"), rel
            cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
            assert cached.exists(), rel
        compiled = list(root.rglob("*.pyc"))
        assert compiled, part
        for pyc in compiled:
            assert pyc.read_bytes()[:4] == importlib.util.MAGIC_NUMBER, pyc  # Python 3.13's
            # 0b01 = hash-based, not checked against the source: a zip's mtimes cannot make it stale
            assert _pyc_flags(pyc) == 0b01, pyc
    assert not list((arm64 / "AgentsLayer").rglob("*.py"))  # dependencies: bytecode alone


@pytest.mark.parametrize("parts, code", [
    # with what the pruned build still runs: rich's tracebacks and Python syntax through pygments' kept
    # lexers, yaml without its native binding, a PDF read by pypdf
    (artefacts.CHAT, "import chat_api\nfrom chatcore.web import snapstart\nsnapstart.warm()\n"
                     "import io, yaml, rich.console, rich.syntax, rich.traceback, pypdf\n"
                     "console = rich.console.Console(file=io.StringIO(), width=100)\n"
                     "try:\n    1 / 0\nexcept ZeroDivisionError:\n    console.print(rich.traceback.Traceback())\n"
                     "console.print(rich.syntax.Syntax('x = 1', 'python'))\n"
                     "assert 'ZeroDivisionError' in console.file.getvalue() and not yaml.__with_libyaml__\n"
                     "assert yaml.safe_load('a: [1, 2]') == {'a': [1, 2]}\n"
                     "w = pypdf.PdfWriter(); w.add_blank_page(100, 100); b = io.BytesIO(); w.write(b)\n"
                     "assert len(pypdf.PdfReader(io.BytesIO(b.getvalue())).pages) == 1\n"
                     "from PIL import ImageFont; ImageFont.load_default()"),
    (artefacts.API, "import api_app"),
    # the events function with what checks a bearer token (PyJWT, cryptography's RSA) from its identity layer
    (artefacts.EVENTS, "import events_app\nfrom chatcore.web import cognito\nimport jwt\n"
                       "from cryptography.hazmat.primitives.asymmetric import rsa\n"
                       "assert jwt.algorithms.has_crypto and not [m for m in sys.modules if m.split('.')[0] == 'agno']"),
    # the account function with its jobs' modules (run() imports them when a job comes); no agno
    (artefacts.ACCOUNT, "import handler\nfrom chatcore.account import deletion, export, jobs\n"
                        "assert not [m for m in sys.modules if m.split('.')[0] in ('agno', 'anthropic')]"),
], ids=["chat", "api", "events", "account"])
def test_the_built_functions_import_from_bytecode_alone_and_from_their_layers_alone(native, parts, code):
    """No module of the artefacts is compiled from source at import (``python -v`` says which file each
    code object came from), and nothing comes from outside them (-S: no site-packages)."""
    before = {p: p.stat().st_mtime_ns for part in parts for p in (native / part).rglob("*")}
    r = subprocess.run(artefacts.import_command(native, parts, code, verbose=True), env=artefacts.import_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    compiled = re.findall(r"^# code object from (/\S+\.py)$", r.stderr, re.M)
    ours = [c for c in compiled if c.startswith(str(native))]
    assert ours == []
    loaded = re.findall(r"^# code object from '(\S+\.pyc)'$", r.stderr, re.M)
    assert sum(str(native) in p for p in loaded) > (300 if "chat_api" in code else 60)
    assert not re.findall(r"site-packages", "\n".join(loaded))
    after = {p: p.stat().st_mtime_ns for part in parts for p in (native / part).rglob("*")}
    assert after == before  # a read-only directory: nothing written, nothing touched


def test_the_wheels_are_built_for_the_architecture_asked(arm64, native):
    built = artefacts.elf_architectures(arm64)
    assert set(built) == {"arm64"} and len(built["arm64"]) > 20  # pydantic-core, psycopg, Pillow, libheif...
    assert set(artefacts.elf_architectures(native)) == {artefacts.native_architecture()}


# The chat function and its layers, unzipped (Lambda's limit is 250 MB): issue 28 made room for a PDF
# parser (pi-heif for pillow-heif: no HEVC encoder; pygments' lexers but Python's; pyyaml's
# native binding; Pillow's FreeType).
SIZE_BUDGET = {"arm64": 105 * 10**6, "x86_64": 115 * 10**6}


def test_the_layers_ship_only_what_is_imported_once_and_fit_the_budget(arm64):
    core, agents = arm64 / "CoreLayer/python", arm64 / "AgentsLayer/python"
    def packages(path):
        return {p.name.split("-")[0].lower() for p in path.glob("*.dist-info")}
    assert not packages(core) & packages(agents)  # nothing twice in the chat function
    assert not {"agnoctl", "typer", "questionary", "prompt_toolkit", "wcwidth", "shellingham"} & (
        packages(core) | packages(agents))
    assert not (core / "bin").exists() and not (agents / "bin").exists()
    chat = sum(artefacts.size_bytes(arm64 / part.split("/")[0]) for part in artefacts.CHAT)
    assert chat <= SIZE_BUDGET["arm64"], f"the chat function and its layers are {chat / 1e6:.1f} MB unzipped"
    assert not [p for p in agents.rglob("*") if "x265" in p.name or p.name.startswith("pillow_heif")]  # decoder only
    assert not list((agents / "pygments/lexers").glob("javascript*"))


def test_the_x86_64_build_fits_its_budget():
    x86 = artefacts.build("x86_64")
    chat = sum(artefacts.size_bytes(x86 / part.split("/")[0]) for part in artefacts.CHAT)
    assert chat <= SIZE_BUDGET["x86_64"], f"the x86_64 chat function and its layers are {chat / 1e6:.1f} MB unzipped"


def test_botocore_keeps_the_model_of_every_service_the_code_calls(arm64):
    """The layer keeps botocore's models of BOTOCORE_SERVICES only: every boto3 client the code makes
    (and the Secrets Manager reads of Powertools' parameters) must be among them."""
    called = {"secretsmanager"}  # aws_lambda_powertools.utilities.parameters.get_secret
    for path in [*(ROOT / "layers/core/chatcore").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            # boto3.client("rds") and the process's clients, chatcore.aws.Client("s3", ...)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("client", "Client") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                called.add(node.args[0].value)
    assert {"s3", "rds", "sns", "sqs", "lambda"} <= called
    assert called <= set(lambda_build.BOTOCORE_SERVICES)
    data = arm64 / "CoreLayer/python/botocore/data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == set(lambda_build.BOTOCORE_SERVICES)
