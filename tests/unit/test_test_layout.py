"""The shape of the tests, held by a test: what tests share lives in ``tests/support``, never in a test
module. No test module imports another test module (its fixtures, helpers or data), and nothing in
tests/support imports one; the tier folders (unit, integration, infra) hold test modules and conftests
only.

Imports are read from the source with ``ast``: module-level and function-level ones alike, relative
ones resolved, and ``from tests.x import test_y`` counted as an import of the module ``tests.x.test_y``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SUPPORT = TESTS / "support"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_test_module(name: str) -> bool:
    """``name`` is a module of tests/ whose file is a test module (``test_*.py``)."""
    path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
    return path.name.startswith("test_") and path.is_file() and TESTS in path.parents


def imported(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``, the file ``path``: each ``import a.b``, and for
    ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a module)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def imports_of_test_modules(path: Path) -> list[str]:
    """Where the file ``path`` imports a test module."""
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for line, name in imported(path.read_text(encoding="utf-8"), path) if is_test_module(name)]


def test_the_scan_sees_test_module_imports_absolute_relative_and_inside_functions():
    source = ("from tests.integration.test_uploads import uploaded\n"
              "import tests.unit.test_migrate\n"
              "from tests.support.uploads import exists\n"
              "def helper():\n"
              "    from .test_resume import read_events\n"
              "    from . import test_faults\n")
    path = TESTS / "integration" / "test_example.py"
    found = [(line, name) for line, name in imported(source, path) if is_test_module(name)]
    assert found == [(1, "tests.integration.test_uploads"), (2, "tests.unit.test_migrate"),
                     (5, "tests.integration.test_resume"), (6, "tests.integration.test_faults")]


def test_no_test_module_imports_another_test_module():
    offences = [hit for path in sorted(TESTS.rglob("test_*.py")) for hit in imports_of_test_modules(path)]
    assert not offences, "share it through tests/support instead:\n" + "\n".join(offences)


def test_tests_support_imports_no_test_module():
    offences = [hit for path in sorted(SUPPORT.rglob("*.py")) for hit in imports_of_test_modules(path)]
    assert list(SUPPORT.rglob("*.py")) and not offences, "\n".join(offences)


def test_the_tier_folders_hold_test_modules_and_conftests_only():
    others = [str(path.relative_to(ROOT)) for path in sorted(TESTS.rglob("*.py"))
              if SUPPORT not in path.parents
              and not (path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"))]
    assert not others, "a module tests share belongs in tests/support:\n" + "\n".join(others)
