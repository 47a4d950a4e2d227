"""The shape of the HTTP routes, held: one module per resource in ``chatcore.web.routes``, each route
a thin adapter (at most 40 lines, no function defined inside it), request-scoped dependencies
declared once (``chatcore.web.dependencies``), and the API function's module only assembles them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUTES = ROOT / "layers" / "core" / "chatcore" / "web" / "routes"
ENTRY_MODULES = [ROOT / "functions" / "api" / "api_app.py", ROOT / "functions" / "chat" / "chat_api.py",
                 ROOT / "functions" / "events" / "events_app.py"]
HTTP_VERBS = {"get", "post", "put", "patch", "delete"}
MAX_ROUTE_LINES = 40


def _route_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The module's routes: functions decorated ``@router.<verb>(...)`` or passed to ``Route(path, fn)``."""
    decorated = [f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in HTTP_VERBS
                         for d in f.decorator_list)]
    routed = {a.id for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Route"
              for a in n.args[1:2] if isinstance(a, ast.Name)}
    return decorated + [f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and f.name in routed]


def test_every_route_is_a_thin_adapter():
    found = 0
    for path in sorted(ROUTES.glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in _route_functions(tree):
            found += 1
            lines = fn.end_lineno - fn.lineno + 1
            assert lines <= MAX_ROUTE_LINES, f"{path.name}:{fn.name} has {lines} lines"
            inner = [n.name for n in ast.walk(fn) if n is not fn and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            assert not inner, f"{path.name}:{fn.name} defines {inner}"
    assert found >= 17  # every route of the API, the chat and the events functions


def test_one_router_per_module_and_the_functions_only_assemble():
    for path in sorted(ROUTES.glob("*.py")):
        if path.name == "__init__.py":
            continue
        source = path.read_text()
        assert source.count("APIRouter(") + source.count("routes = [") == 1, path.name
    for path in ENTRY_MODULES:
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))], path
        assert len(path.read_text().splitlines()) < 120, path


def test_the_api_function_serves_every_api_router():
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "functions" / "api"))
    try:
        api_app = importlib.import_module("api_app")
    finally:
        sys.path.remove(str(ROOT / "functions" / "api"))
    modules = {p.stem for p in ROUTES.glob("*.py")} - {"__init__", "turn_stream", "turn_events"}
    assert {r.routes[0].endpoint.__module__.rsplit(".", 1)[1] for r in api_app.ROUTERS} == modules
