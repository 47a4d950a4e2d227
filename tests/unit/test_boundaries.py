"""The shape of ``chatcore``, held by tests: which modules load agno, which way imports point, no cycles.

Dependencies point one way: ``web -> turns, account -> wire, media, money, catalog, memory -> store ->
db, config, errors`` (with ``observability``, ``cli``, ``days`` and ``aws``, the services every layer may use).
A lower layer never imports a higher one; modules of one layer may use each other, without cycles
(``catalog`` reads ``money.prices`` to record the pinned prices, ``money`` writes amounts with
``wire.amounts``, ``wire.messages`` names a message's photos with ``media.s3``). There is no
exception. ``migrate`` and ``scheduled`` are entry points (a command, the scheduled function's job):
they may use any layer but the web, and nothing in the package imports them. Every subpackage and
top-level module has its place here; a new one fails the tests until it is given one.

The import graph is read from the source files with ``ast``: module-level and function-level imports
alike (a lazy import inside a function is still a dependency), relative imports resolved, and
``from chatcore.x import y`` counted as an import of the module ``chatcore.x.y`` when ``y`` is one.
Imports under ``if TYPE_CHECKING:`` never run, but they count everywhere: a lower layer should not
even name a higher one's types, and two modules that name each other's are one design in two files.

What agno loads is checked by running the import: each module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core"
PACKAGE = CORE / "chatcore"

# The layer of each subpackage and top-level module; a module imports its own layer and lower ones.
LAYERS = {
    "web": 4,
    "turns": 3, "account": 3,
    "wire": 2, "media": 2, "money": 2, "catalog": 2, "memory": 2, "notify": 2, "spool": 2,
    "store": 1,
    # the services every layer uses
    "db": 0, "config": 0, "errors": 0, "observability": 0, "cli": 0, "days": 0, "aws": 0,
}
# Run on their own (a command, a function's job): they may use any layer below the web, and nothing
# in the package imports them.
ENTRY_POINTS = ("migrate", "scheduled")
STORE_MAY_IMPORT = {"chatcore.db", "chatcore.config", "chatcore.errors"}
# What the wire format never imports: it is what goes over the wire, with no HTTP (and no agno) in it.
NOT_ON_THE_WIRE = {"starlette", "fastapi", "httpx", "uvicorn", "agno"}


# --------------------------------------------------------------------------- the graph


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = source_modules()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_checking_only: bool


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, source: str, modules: dict | set, *, is_package: bool = False) -> list[Edge]:
    """Every import of a ``chatcore`` module in ``source`` (the module ``name``), at any depth."""
    edges: list[Edge] = []

    def add(target: str, node: ast.stmt, guarded: bool) -> None:
        if target == "chatcore" or target.startswith("chatcore."):
            edges.append(Edge(name, target, node.lineno, guarded))

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, guarded)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, guarded)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                add(submodule if submodule in modules else module, node, guarded)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return edges


@cache
def package_edges() -> tuple[Edge, ...]:
    return tuple(e for name, path in MODULES.items()
                 for e in imports_of(name, path.read_text(encoding="utf-8"), MODULES,
                                     is_package=path.name == "__init__.py"))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := dfs(start)):
            return found
    return None


def part(module: str) -> str:
    """The subpackage or top-level module of ``chatcore`` that ``module`` belongs to."""
    return module.split(".")[1] if "." in module else ""


def unclassified(modules) -> list[str]:
    """The subpackages and top-level modules of ``modules`` that have no place in the layers."""
    return sorted({part(m) for m in modules} - {""} - set(LAYERS) - set(ENTRY_POINTS))


def import_graph(edges, modules) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, ``TYPE_CHECKING`` imports included."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for e in edges:
        if e.target in modules and e.target != e.source:
            graph[e.source].add(e.target)
    return graph


def against_the_layers(edges) -> list[str]:
    """Every edge that points up the layers, into an entry point, or from an entry point into the web."""
    bad = []
    for e in edges:
        src, dst = part(e.source), part(e.target)
        if src == dst:
            continue
        if dst in ENTRY_POINTS:
            bad.append(f"{e.source}:{e.line} imports the entry point {e.target}")
        elif src in ENTRY_POINTS and dst == "web":
            bad.append(f"{e.source}:{e.line} (an entry point) imports {e.target} (web)")
        elif src in LAYERS and dst in LAYERS and LAYERS[dst] > LAYERS[src]:
            bad.append(f"{e.source}:{e.line} ({src}, layer {LAYERS[src]}) imports {e.target} ({dst}, layer {LAYERS[dst]})")
    return bad


# --------------------------------------------------------------------------- the tools themselves


def test_the_import_reader_sees_every_kind_of_import():
    modules = {"chatcore.a", "chatcore.a.sub", "chatcore.b", "chatcore.c", "chatcore.d", "chatcore.e"}
    source = (
        "from __future__ import annotations\n"
        "import os\n"
        "import chatcore.b\n"
        "from chatcore.a import sub, helper\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from chatcore.c import Thing\n"
        "def f():\n"
        "    from chatcore import d\n"
        "    class K:\n"
        "        def g(self):\n"
        "            from . import e\n"
    )
    edges = imports_of("chatcore.x", source, modules)
    assert {(e.target, e.type_checking_only) for e in edges} == {
        ("chatcore.b", False), ("chatcore.a.sub", False), ("chatcore.a", False), ("chatcore.c", True),
        ("chatcore.d", False), ("chatcore.e", False)}
    # relative imports from a package's __init__ resolve inside the package
    assert [e.target for e in imports_of("chatcore.a", "from .sub import x\nfrom .. import b\n", modules,
                                         is_package=True)] == ["chatcore.a.sub", "chatcore.b"]


def test_the_cycle_finder_finds_a_cycle_and_reports_it():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_a_cycle_through_a_type_checking_import_is_a_cycle():
    modules = {"chatcore.turns.begin", "chatcore.turns.finish"}
    edges = [*imports_of("chatcore.turns.begin", "from chatcore.turns.finish import flush\n", modules),
             *imports_of("chatcore.turns.finish", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from chatcore.turns.begin import Prepared\n", modules)]
    assert find_cycle(import_graph(edges, modules)) == ["chatcore.turns.begin", "chatcore.turns.finish",
                                                        "chatcore.turns.begin"]


def test_a_new_subpackage_or_top_level_module_is_reported_until_it_is_classified():
    assert unclassified({"chatcore", "chatcore.web.app", "chatcore.db", "chatcore.migrate"}) == []
    assert unclassified({"chatcore.web.app", "chatcore.billing.invoices", "chatcore.billing", "chatcore.helpers"}) == [
        "billing", "helpers"]


def test_the_layer_rule_reports_each_kind_of_wrong_edge():
    def edge(source: str, target: str) -> Edge:
        return Edge(source, target, 1, False)

    assert against_the_layers([edge("chatcore.web.app", "chatcore.turns.run"), edge("chatcore.turns.run", "chatcore.wire.sse"),
                               edge("chatcore.money.budgets", "chatcore.wire.amounts"),
                               edge("chatcore.scheduled", "chatcore.account.retention"),
                               edge("chatcore.wire.messages", "chatcore.media.s3")]) == []
    bad = against_the_layers([edge("chatcore.wire.sse", "chatcore.turns.outcome"),
                              edge("chatcore.account.archive", "chatcore.web.app"), edge("chatcore.db", "chatcore.store.ledger"),
                              edge("chatcore.web.app", "chatcore.scheduled"), edge("chatcore.migrate", "chatcore.web.app")])
    assert [b.split(":")[0] for b in bad] == ["chatcore.wire.sse", "chatcore.account.archive", "chatcore.db",
                                              "chatcore.web.app", "chatcore.migrate"], bad


def test_the_graph_covers_the_package():
    assert {"chatcore.store.sessions", "chatcore.turns.run", "chatcore.wire.sse", "chatcore.media.keys",
            "chatcore.money.prices", "chatcore.catalog.agents.assistant", "chatcore.db"} <= set(MODULES)
    targets = {e.target for e in package_edges()}
    assert "chatcore.wire.sse" in targets and "chatcore.store.turns" in targets
    assert any(e.type_checking_only for e in package_edges())  # the guarded imports are read too


# --------------------------------------------------------------------------- the rules


def test_every_subpackage_and_top_level_module_has_its_place():
    assert not unclassified(MODULES), f"give these a layer (LAYERS) or make them an entry point: {unclassified(MODULES)}"
    gone = sorted((set(LAYERS) | set(ENTRY_POINTS)) - {part(m) for m in MODULES})
    assert not gone, f"classified but not in the package: {gone}"


def test_no_import_cycle_inside_chatcore():
    cycle = find_cycle(import_graph(package_edges(), MODULES))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down_the_layers():
    bad = against_the_layers(package_edges())
    assert not bad, "\n".join(bad)


def test_store_imports_only_db_config_errors_and_itself():
    bad = [f"{e.source}:{e.line} imports {e.target}" for e in package_edges() if part(e.source) == "store"
           and e.target not in STORE_MAY_IMPORT and part(e.target) != "store"]
    assert not bad, "\n".join(bad)


def test_the_wire_format_imports_no_http_and_no_agno():
    bad = []
    for name, path in MODULES.items():
        if part(name) != "wire":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
            (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        bad += [f"{name} imports {root}" for root in sorted(roots & NOT_ON_THE_WIRE)]
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- agno stays in the turn path


# Modules that never load agno: every module but the web's and the turn path's, except the bridge to
# agno's media storage; and of the turn path, what the events function follows a turn with and the API
# function stops one with (and the turn's plain data).
AGNO_BRIDGE = "chatcore.media.agno_storage"
LEAN_TURN_MODULES = ("chatcore.turns.turn_events", "chatcore.turns.outcome", "chatcore.turns.stop", "chatcore.turns.turn")
LEAN = sorted([*(m for m in MODULES if part(m) not in ("", "web", "turns") and m != AGNO_BRIDGE), *LEAN_TURN_MODULES])
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
import chatcore
print(json.dumps({"agno": sorted(m for m in sys.modules if m == "agno" or m.startswith("agno.")),
                  "chatcore": chatcore.__file__}))
"""


@pytest.fixture(scope="module")
def imported() -> dict[str, dict]:
    """What importing each module loads, each in a fresh interpreter (run side by side: it is quick)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join([str(ROOT), str(CORE)])}
    names = [*LEAN, AGNO_BRIDGE]
    procs = {name: subprocess.Popen([sys.executable, "-c", PROBE, name], cwd=ROOT, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in names}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"import {name} failed:\n{err[-3000:]}"
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


def test_the_probe_sees_agno_where_it_is_loaded(imported):
    """The one media module that bridges to agno does load it: the check below can fail."""
    probe = imported[AGNO_BRIDGE]
    assert "agno" in probe["agno"]
    assert Path(probe["chatcore"]).resolve() == (PACKAGE / "__init__.py").resolve()  # the source tree's package


@pytest.mark.parametrize("module", LEAN)
def test_lean_modules_do_not_load_agno(imported, module):
    assert imported[module]["agno"] == [], f"importing {module} loads agno: {imported[module]['agno'][:5]}"


@pytest.mark.parametrize("function, module", [("api", "api_app"), ("events", "events_app"), ("account", "handler"),
                                              ("scheduled", "handler")])
def test_functions_but_chat_do_not_import_agno(function, module):
    code = (f"import sys; sys.path[:0] = ['functions/{function}', 'layers/core', '.']; import {module}; "
            "bad = sorted(m for m in sys.modules if m == 'agno' or m.startswith(('agno.', 'anthropic')));"
            "print(bad); assert not bad")
    env = {"DATABASE_URL": "postgresql://unused/x", "MEDIA_BUCKET": "b", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_events_function_loads_no_pydantic_until_it_rebuilds_a_final_event():
    """A phone reconnecting waits for the events function's cold start: pydantic (the registry of
    events) is loaded only to build a final event a turn never stored."""
    code = ("import sys; sys.path[:0] = ['functions/events', 'layers/core', '.']; import events_app; "
            "assert 'pydantic' not in sys.modules, 'pydantic at start-up'; "
            "from uuid import uuid4; from chatcore.turns.turn_events import final_event_of; "
            "name, data = final_event_of(uuid4(), uuid4(), {'status': 'running'}); "
            "assert name == 'TurnFailed' and 'pydantic' in sys.modules")
    env = {"DATABASE_URL": "postgresql://unused/x", "MEDIA_BUCKET": "b", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_function_imports_the_report_module():
    for path in (ROOT / "functions").rglob("*.py"):
        text = path.read_text()
        assert "chatcore.money.report" not in text and "import report" not in text, path
