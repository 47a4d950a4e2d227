"""The OpenAPI document: committed, generated from the code, and a property-based fuzz run
(schemathesis) against the served API with no 5xx and no response outside the document."""

from __future__ import annotations

import json

import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings

from local.openapi import OPENAPI_PATH, generate


def test_committed_openapi_matches_the_code():
    assert OPENAPI_PATH.read_text() == generate(), "run `python -m local.openapi` and commit docs/openapi.json"


def test_openapi_documents_every_route_limit_and_the_turn_events():
    doc = json.loads(OPENAPI_PATH.read_text())
    assert doc["openapi"].startswith("3.")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert ops == {("GET", "/agents"), ("GET", "/teams"), ("POST", "/sessions"), ("GET", "/sessions"),
                   ("GET", "/sessions/{session_id}"), ("PATCH", "/sessions/{session_id}"),
                   ("DELETE", "/sessions/{session_id}"), ("GET", "/sessions/{session_id}/messages"),
                   ("POST", "/sessions/{session_id}/turns"), ("GET", "/usage"),
                   ("GET", "/sessions/{session_id}/turns/{run_id}/events"),
                   ("POST", "/sessions/{session_id}/turns/{run_id}/cancel"), ("POST", "/uploads")}
    turn = doc["paths"]["/sessions/{session_id}/turns"]["post"]
    for word in ("TurnCompleted", "TurnFailed", "TurnCancelled", "RunContent", "TeamRunStarted", "parent_run_id",
                 "id:", "event:", "X-Run-Id", "Last-Event-ID", ": ping"):
        assert word in turn["description"]
    assert "X-Run-Id" in turn["responses"]["200"]["headers"]
    resume = doc["paths"]["/sessions/{session_id}/turns/{run_id}/events"]["get"]
    assert {p["name"] for p in resume["parameters"]} == {"session_id", "run_id", "Last-Event-ID", "after"}
    assert "text/event-stream" in resume["responses"]["200"]["content"] and "404" in resume["responses"]
    cancel = doc["paths"]["/sessions/{session_id}/turns/{run_id}/cancel"]["post"]
    assert {"202", "404", "409"} <= set(cancel["responses"])
    assert "text/event-stream" in turn["responses"]["200"]["content"]
    turn_in = doc["components"]["schemas"]["TurnIn"]["properties"]
    assert turn_in["message"]["maxLength"] == 32000 and turn_in["images"]["maxItems"] == 20
    for path in doc["paths"].values():
        for op in path.values():
            assert "application/problem+json" in op["responses"]["422"]["content"]


# The document the fuzz run draws from: the committed one, which the first test proves is the code's.
FUZZ_SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
OPERATIONS = [result.ok() for result in FUZZ_SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_user(server_url):
    from tests.conftest import User

    user = User(server_url)
    user.new_session()
    return user


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_fuzz_the_served_api(operation, server_url, fuzz_user, standin):
    """Random valid and invalid requests to the served API: never a 5xx, and every response's status,
    content type and body as documented (schemathesis' checks)."""
    seen = []

    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case):
        # positive_data_acceptance is left out: some rules are beyond what a JSON schema says (a cursor
        # must be one the API issued, a usage range at most 366 days, a turn needs text or an image,
        # exactly one of agent/team); those requests get a documented 422 problem, which is checked.
        response = case.call_and_validate(base_url=server_url, headers=fuzz_user.headers,
                                          excluded_checks=[positive_data_acceptance])
        seen.append(response.status_code)
        assert response.status_code < 500

    run()
    assert seen, "the fuzz run made no request"
