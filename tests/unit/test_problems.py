"""The problem documents and the one ``Problem`` schema that describes them in docs/openapi.json:
every member a problem is raised with is declared there (so generated Kotlin/Swift/Dart models keep
it), every problem type validates against it, and an unexpected error is a 500 problem too, not
Starlette's plain text. Pure: no database (the served problems are checked in tests/integration)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from chatcore import errors
from chatcore.wire.schemas import Problem

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "layers" / "core" / "chatcore").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]


def problem_types() -> list[type[errors.ProblemError]]:
    """The problem types of ``chatcore.errors`` (whatever else is imported: web.app's ``_HttpProblem``,
    a status Starlette chose, is not one of them)."""
    found, todo = [], [errors.ProblemError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == errors.__name__:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def members_raised() -> dict[str, set[str]]:
    """Each keyword given to a problem type anywhere in the code, with where it is given."""
    names = {cls.__name__ for cls in problem_types()}
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if called in names:
                for keyword in node.keywords:
                    if keyword.arg is not None:
                        found.setdefault(keyword.arg, set()).add(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_member_a_problem_is_raised_with_is_declared_in_the_problem_schema():
    raised = members_raised()
    # the reader sees the members it should (it would pass vacuously otherwise)
    assert {"field", "errors", "run_id", "run_status", "monthly_budget_zar", "estimated_tokens"} <= set(raised)
    undeclared = {name: sorted(where) for name, where in raised.items() if name not in Problem.model_fields}
    assert not undeclared, f"declare these in chatcore.wire.schemas.Problem: {undeclared}"
    # a member must not replace one every problem has (a run's "status" is not the HTTP status)
    replaced = {name: sorted(raised[name]) for name in raised.keys() & {"type", "title", "status", "code", "detail"}}
    assert not replaced, f"these replace a problem's own members: {replaced}"


@pytest.mark.parametrize("cls", problem_types(), ids=lambda c: c.__name__)
def test_every_problem_type_matches_the_problem_schema(cls):
    kwargs = {"run_id": None} if cls is errors.UploadUsed else {}
    body = cls("what happened", **kwargs).to_problem()
    assert None not in body.values()  # a member not set is left out, never null (the schema says so)
    problem = Problem.model_validate(body)
    assert (problem.status, problem.code, problem.detail) == (cls.status, cls.code, "what happened")
    assert problem.retry_after == cls.retry_after  # in the body too: generated clients rarely expose headers


def test_a_422_carries_its_field_errors_as_declared():
    err = errors.InvalidInput("the request has invalid fields", field="limit",
                              errors=[{"loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1"}])
    problem = Problem.model_validate(err.to_problem())
    assert problem.field == "limit" and [(e.loc, e.msg) for e in problem.errors] == [
        (["query", "limit"], "Input should be greater than or equal to 1")]


def test_an_unexpected_error_is_a_500_problem_in_both_kinds_of_app():
    from fastapi import APIRouter

    from chatcore.web.app import create_web_app
    from chatcore.web.fastapi_app import create_app

    async def broken(_request):
        raise RuntimeError("a bug")

    router = APIRouter()

    @router.get("/broken")
    async def broken_route():
        raise KeyError("a bug")

    for app in (create_web_app(routes=[Route("/broken", broken)]), create_app(title="t", routers=[router])):
        r = TestClient(app, raise_server_exceptions=False).get("/broken")  # no lifespan: no settings needed
        assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
        problem = Problem.model_validate(r.json())
        assert problem.code == "internal-error" and "a bug" not in r.text  # nothing of the error leaks
