"""The OpenAPI document: committed, generated from the code, and a property-based fuzz run
(schemathesis) against the served API with no 5xx and no response outside the document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings

from local.openapi import OPENAPI_PATH, generate

ROOT = Path(__file__).resolve().parents[2]


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
                   ("POST", "/sessions/{session_id}/turns/{run_id}/cancel"),
                   ("POST", "/sessions/{session_id}/turns/{run_id}/resume-token"), ("POST", "/uploads"),
                   ("DELETE", "/me"), ("GET", "/me/deletion"), ("POST", "/me/export"), ("GET", "/me/export"),
                   ("GET", "/me/memories"), ("DELETE", "/me/memories"), ("PATCH", "/me/memories/{memory_id}"),
                   ("DELETE", "/me/memories/{memory_id}"), ("GET", "/me/settings"), ("PUT", "/me/settings"),
                   ("POST", "/sessions/{session_id}/turns/{run_id}/approvals"), ("GET", "/me/reminders"),
                   ("POST", "/me/devices"), ("GET", "/me/devices"), ("DELETE", "/me/devices/{device_id}"),
                   ("POST", "/sessions/{session_id}/turns/estimate")}
    for method, path in (("DELETE", "/me"), ("POST", "/me/export")):  # done at once, or 202 and poll
        assert {"200", "202"} <= set(doc["paths"][path][method.lower()]["responses"])
    turn = doc["paths"]["/sessions/{session_id}/turns"]["post"]
    for word in ("TurnCompleted", "TurnFailed", "TurnCancelled", "RunContent", "TeamRunStarted", "parent_run_id",
                 "MemoryUpdated",
                 "id:", "event:", "X-Run-Id", "Last-Event-ID", ": ping"):
        assert word in turn["description"]
    assert "X-Run-Id" in turn["responses"]["200"]["headers"]
    resume = doc["paths"]["/sessions/{session_id}/turns/{run_id}/events"]["get"]
    assert {p["name"] for p in resume["parameters"]} == {"session_id", "run_id", "Last-Event-ID", "after", "token"}
    assert "text/event-stream" in resume["responses"]["200"]["content"] and "404" in resume["responses"]
    cancel = doc["paths"]["/sessions/{session_id}/turns/{run_id}/cancel"]["post"]
    assert {"202", "404", "409"} <= set(cancel["responses"])
    assert "text/event-stream" in turn["responses"]["200"]["content"]
    assert "204" in resume["responses"] and "content" not in resume["responses"]["204"]  # a resume that ends
    turn_in = doc["components"]["schemas"]["TurnIn"]["properties"]
    assert turn_in["message"]["maxLength"] == 32000 and turn_in["images"]["maxItems"] == 20
    for path in doc["paths"].values():
        for op in path.values():
            assert "application/problem+json" in op["responses"]["422"]["content"]


def test_both_stream_routes_carry_one_schema_per_event_told_apart_by_its_name():
    """What generators type a stream with (docs/api.md: OpenAPI 3.1 has no itemSchema, and neither
    generator reads 3.2's): the data of one event, TurnEvent, a oneOf of every event of the registry."""
    from chatcore.wire.events import EVENTS, name_of

    doc = json.loads(OPENAPI_PATH.read_text())
    schemas = doc["components"]["schemas"]
    for path, method in (("/sessions/{session_id}/turns", "post"), ("/sessions/{session_id}/turns/{run_id}/events", "get")):
        ok = doc["paths"][path][method]["responses"]["200"]
        assert ok["content"] == {"text/event-stream": {"schema": {"$ref": "#/components/schemas/TurnEvent"}}}, path
        assert ok["headers"]["X-Run-Id"]["schema"] == {"type": "string", "format": "uuid"}, path
    union = schemas["TurnEvent"]
    mapping = union["discriminator"]["mapping"]
    assert union["discriminator"]["propertyName"] == "event"
    names = [name_of(m) for m in EVENTS]
    assert set(mapping) == set(names) and len(mapping) >= 25
    assert union["oneOf"] == [{"$ref": mapping[name]} for name in names]
    for name, ref in mapping.items():
        event = schemas[ref.rsplit("/", 1)[1]]
        assert event["properties"]["event"]["const"] == name and "event" in event["required"], name
    assert schemas["TurnCompleted"]["additionalProperties"] is False  # ours, exactly
    assert schemas["RunContent"]["additionalProperties"] is True  # agno's: it may add members


def operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, op) for path, item in doc["paths"].items() for method, op in item.items()]


# What a generated client calls each route (TurnsApi.streamTurn, SessionsApi.deleteSession, ...).
OPERATION_IDS = {
    ("GET", "/agents"): "listAgents", ("GET", "/teams"): "listTeams",
    ("POST", "/sessions"): "createSession", ("GET", "/sessions"): "listSessions",
    ("GET", "/sessions/{session_id}"): "getSession", ("PATCH", "/sessions/{session_id}"): "renameSession",
    ("DELETE", "/sessions/{session_id}"): "deleteSession",
    ("GET", "/sessions/{session_id}/messages"): "listMessages",
    ("POST", "/sessions/{session_id}/turns"): "streamTurn",
    ("GET", "/sessions/{session_id}/turns/{run_id}/events"): "streamTurnEvents",
    ("POST", "/sessions/{session_id}/turns/{run_id}/cancel"): "cancelTurn",
    ("POST", "/sessions/{session_id}/turns/{run_id}/resume-token"): "createResumeToken",
    ("POST", "/uploads"): "createUpload", ("GET", "/usage"): "getUsage",
    ("DELETE", "/me"): "deleteMe", ("GET", "/me/deletion"): "getDeletion",
    ("POST", "/me/export"): "startExport", ("GET", "/me/export"): "getExport",
    ("GET", "/me/memories"): "listMemories", ("DELETE", "/me/memories"): "deleteMemories",
    ("PATCH", "/me/memories/{memory_id}"): "editMemory", ("DELETE", "/me/memories/{memory_id}"): "deleteMemory",
    ("GET", "/me/settings"): "getSettings", ("PUT", "/me/settings"): "updateSettings",
    ("POST", "/sessions/{session_id}/turns/{run_id}/approvals"): "decideTurn", ("GET", "/me/reminders"): "listReminders",
    ("POST", "/me/devices"): "registerDevice", ("GET", "/me/devices"): "listDevices",
    ("DELETE", "/me/devices/{device_id}"): "deleteDevice",
    ("POST", "/sessions/{session_id}/turns/estimate"): "estimateTurn",
}


def test_operation_ids_are_readable_camel_case_method_names():
    doc = json.loads(OPENAPI_PATH.read_text())
    ids = {(method, path): op.get("operationId") for method, path, op in operations(doc)}
    assert ids == OPERATION_IDS
    assert len(set(ids.values())) == len(ids)  # unique
    for (method, path), op_id in ids.items():  # the rules, for routes added later
        assert_readable(op_id, path)


def assert_readable(op_id: str, path: str) -> None:
    """camelCase, and none of what FastAPI's default ids are made of: the path's segments run
    together (``SessionsSessionIdTurns``), its parameters (``SessionId``), the method at the end."""
    assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", op_id), f"{op_id}: not camelCase"
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+", op_id)]
    assert words[-1] not in {"get", "post", "put", "patch", "delete"}, f"{op_id}: ends with the method"
    assert "id" not in words, f"{op_id}: names a path parameter"
    segments = [re.sub(r"[^a-z]", "", part.lower()) for part in path.split("/") if part]
    assert not any(a + b in op_id.lower() for a, b in zip(segments, segments[1:])), f"{op_id}: holds the path"


def test_the_servers_are_the_deployed_api_and_bin_serve():
    from local.invoke import load_template

    doc = json.loads(OPENAPI_PATH.read_text())
    deployed, local = doc["servers"]
    assert deployed["url"] == "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}"
    variables = deployed["variables"]
    assert set(variables) == {"apiId", "region", "stage"} and all(v["default"] for v in variables.values())
    # the stage is the template's StageName, which its ApiUrl output ends with
    template = load_template()
    assert variables["stage"]["default"] == template["Parameters"]["StageName"]["Default"]
    assert template["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"].endswith("/${StageName}")
    serve_port = re.search(r'add_argument\("--port", type=int, default=(\d+)', (ROOT / "local" / "serve.py").read_text())
    assert serve_port and local["url"] == f"http://127.0.0.1:{serve_port.group(1)}"


# API Gateway answers 401, 403, 413 and 429 itself (GatewayResponses); every route can fail with a 500 or a 503.
EVERY_STATUS = ("401", "403", "429", "500", "503")


def test_every_operation_documents_the_gateways_problems_and_5xx_as_problem_json():
    doc = json.loads(OPENAPI_PATH.read_text())
    for method, path, op in operations(doc):
        for status in EVERY_STATUS:
            response = op["responses"].get(status)
            assert response, f"{method} {path}: no {status}"
            assert response["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, \
                (method, path, status)
        assert op["responses"]["503"]["headers"]["Retry-After"]["schema"]["type"] == "integer", (method, path)
    # and what API Gateway answers is that shape: its templates name the same statuses and members
    from local.invoke import load_template

    gateway = load_template()["Resources"]["ChatApi"]["Properties"]["GatewayResponses"]
    bodies = {g["StatusCode"]: g["ResponseTemplates"]["application/json"] for g in gateway.values() if "StatusCode" in g}
    assert {"401", "403", "429"} <= set(bodies)
    for body in bodies.values():
        assert all(f'"{member}":' in body for member in ("type", "title", "status", "code", "detail")), body


def test_the_problem_schema_declares_field_errors_and_retry_info():
    doc = json.loads(OPENAPI_PATH.read_text())
    schemas = doc["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code", "detail"}
    members = problem["properties"]
    assert members["errors"]["type"] == "array" and members["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}
    field_error = schemas["FieldError"]
    assert field_error["required"] == ["loc", "msg"] and field_error["properties"]["loc"]["items"] == {"type": "string"}
    assert members["retry_after"]["type"] == "integer" and members["run_id"]["format"] == "uuid"
    assert {"field", "run_status", "spent_zar", "estimated_tokens"} <= set(members)
    # a member absent when unset is its own type, not "T or null" (generated models keep its description)
    assert not any("anyOf" in m or "default" in m for m in members.values())
    assert not [r for r in json.dumps(doc["paths"]).split('"$ref": ') if "#/$defs/" in r[:20]]


# A number written with an exponent ("0E-10"), the way str(Decimal) writes a numeric(20, 10) zero.
EXPONENT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+$")


def test_amounts_are_documented_as_plain_decimal_strings_and_no_example_has_an_exponent():
    from chatcore.wire.amounts import DECIMAL_PATTERN

    doc = json.loads(OPENAPI_PATH.read_text())
    schemas = doc["components"]["schemas"]
    amounts = [schemas["Money"]["properties"][k] for k in ("usd", "zar")] + [
        schemas["BudgetOut"]["properties"][k] for k in ("monthly_budget_zar", "spent_zar", "reserved_zar", "remaining_zar")]
    for amount in amounts:
        assert amount["type"] == "string" and amount["pattern"] == DECIMAL_PATTERN
        assert all(re.match(DECIMAL_PATTERN, example) for example in amount["examples"])
    assert not re.match(DECIMAL_PATTERN, "0E-10") and re.match(DECIMAL_PATTERN, "0.0000000000")

    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    assert not [text for text in strings(doc) if EXPONENT.match(text)]


# The document the fuzz run draws from: the committed one, which the first test proves is the code's.
FUZZ_SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
OPERATIONS = [result.ok() for result in FUZZ_SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_user(server_url):
    from tests.support.users import User

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
        # positive_data_acceptance is left out here: some rules are beyond what a JSON schema says (a
        # cursor must be one the API issued, a usage range at most 366 days, a photo must be a real
        # image of its mime_type); those requests get a documented 422 problem, which is checked.
        # bin/fuzz runs every check, with valid cursors and days drawn from dictionaries and a turn's
        # generated photo allowed its 422 (local/fuzz.py; tests/integration/test_openapi_rules.py
        # runs it bounded).
        response = case.call_and_validate(base_url=server_url, headers=fuzz_user.headers,
                                          excluded_checks=[positive_data_acceptance])
        seen.append(response.status_code)
        assert response.status_code < 500

    run()
    assert seen, "the fuzz run made no request"


def test_a_turn_image_is_one_object_generated_clients_can_fill_with_either_kind_of_photo():
    """Not a oneOf (generated clients merge it into one class with both data and upload_id required):
    one object with the fields of both kinds, none required; the API takes exactly one of them."""
    from chatcore.wire.schemas import ImageIn, UploadRef

    doc = json.loads(OPENAPI_PATH.read_text())
    schemas = doc["components"]["schemas"]
    assert schemas["TurnIn"]["properties"]["images"]["items"] == {"$ref": "#/components/schemas/TurnImage"}
    image = schemas["TurnImage"]
    assert set(image["properties"]) == set(ImageIn.model_fields) | set(UploadRef.model_fields)
    assert "required" not in image and image["additionalProperties"] is False
    assert "oneOf" not in json.dumps(schemas["TurnIn"])
