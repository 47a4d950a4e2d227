"""Every sample event runs through the local invoker (bin/invoke) against the local stack and
succeeds; the turn streams. The functions run as deployed: their own processes, Lambda's
variables, identity only from the authorizer's claims."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from chatcore.wire import sse
from local.invoke import ROOT, Invoker, api_event, function_for_route, is_api_event, load_template

EVENTS = sorted((ROOT / "events").glob("*.json"))
TEMPLATE = load_template()


def function_for(path: Path, event: dict) -> str:
    """API events by their route in template.yaml; others by the file name: rollup-* -> ScheduledFunction,
    account-* -> AccountFunction."""
    if is_api_event(event):
        function = function_for_route(TEMPLATE, event["httpMethod"], event["resource"])
        assert function, f"{path.name}: {event['httpMethod']} {event['resource']} is no route of template.yaml"
        return function
    prefix = path.name.split("-")[0]
    return f"{prefix.capitalize()}Function"


@pytest.fixture(scope="module")
def invoker(stack):
    # the web app's origin (CorsAllowOrigin): the sample preflight is answered for it
    with Invoker(stack.env, log=sys.stderr, parameter_overrides={"CorsAllowOrigin": "https://app.example"}) as inv:
        yield inv


def test_there_is_an_event_for_every_function_and_route():
    covered = set()
    for path in EVENTS:
        event = json.loads(path.read_text())
        function = function_for(path, event)
        covered.add((function, event["httpMethod"], event["resource"]) if is_api_event(event) else (function,))
    from local.invoke import function_spec, functions

    for name in functions(TEMPLATE):
        spec = function_spec(TEMPLATE, name)
        if spec.routes:
            for method, route in spec.routes:
                if method == "OPTIONS":  # every path's preflight is answered alike, before routing (web.cors)
                    assert any(c[:2] == (name, "OPTIONS") for c in covered), f"no preflight event for {name}"
                    continue
                assert (name, method, route) in covered, f"no event in events/ for {method} {route}"
        else:
            assert (name,) in covered, f"no event in events/ for {name}"
    bodies = [json.loads(e["body"]) for e in map(lambda p: json.loads(p.read_text()), EVENTS)
              if is_api_event(e) and e.get("body")]
    images = [img for b in bodies for img in b.get("images", [])]
    assert images and base64.b64decode(images[0]["data"]).startswith(b"\x89PNG\r\n\x1a\n"), "a turn with a real PNG"


@pytest.mark.parametrize("path", EVENTS, ids=[p.name for p in EVENTS])
def test_every_event_succeeds(invoker, standin, path):
    event = json.loads(path.read_text())
    function = function_for(path, event)
    result = invoker.invoke(function, event)
    if path.name == "api-cancel-turn.json":
        # ${RUN_ID} is a turn run to its end: a stop for it is answered 409 turn-finished (a running
        # turn's 202 is tested against two instances in tests/integration/test_resume.py)
        assert result.status == 409 and json.loads(result.body)["code"] == "turn-finished", result.body
        return
    if path.name in ("api-edit-memory.json", "api-delete-memory.json", "api-delete-device.json"):
        # a memory id that exists nowhere (a memory is written by a turn's tool call: the routes'
        # own tests in tests/integration/test_memory.py), a device id no one registered (the events
        # run in name order: api-register-device.json comes after; tests/integration/test_push.py):
        # answered 404, as someone else's would be
        assert result.status == 404 and json.loads(result.body)["code"] == "not-found", result.body
        return
    if path.name == "api-get-account-deletion.json":
        # the caller's account (api-delete-account.json's) was deleted within its request: nothing is
        # under way (a deletion waiting for turns to stop: tests/integration)
        assert result.status == 404 and json.loads(result.body)["code"] == "no-deletion", result.body
        return
    assert result.ok, (result.status, result.error, result.body[:2000], result.payload)
    if path.name == "api-preflight.json":  # a browser's preflight, from the web app's origin, with no token
        assert result.status == 204 and result.headers["access-control-allow-origin"] == "https://app.example"
    if result.kind == "stream" and path.name == "chat-estimate-turn.json":  # a JSON answer through the stream
        assert result.status == 200 and result.headers["content-type"].startswith("application/json")
        assert json.loads(result.body)["cost"]["likely"]["zar"], result.body
    elif result.kind == "stream":
        assert result.status == 200 and result.headers["content-type"].startswith("text/event-stream")
        events = sse.parse(result.body.decode())
        assert events[-1]["event"] == "TurnCompleted", events[-1]
        assert len(result.chunks) > 1
    elif result.kind == "buffered":
        assert 200 <= result.status < 300 and result.payload["statusCode"] == result.status
    if path.name == "account-cognito-user-deleted.json":
        # an administrator's AdminDeleteUser (EventBridge): a sub with no account is deleted at once
        # (tests/integration/test_account_deletion.py deletes a real one this way)
        assert result.kind == "handler" and result.payload == {"job": "cognito-deletion", "status": "deleted"}
    elif path.name.startswith("account-"):
        # a job for an id that does not exist (a deletion already finished, an export already
        # pruned) is a harmless no-op: Lambda's retries and a second invoke are safe
        assert result.kind == "handler" and result.payload["job"] == event["job"]
        assert result.payload["id"] == event["id"], result.payload
    if path.name.startswith("spool-"):
        # a spooled turn of a session that no longer exists is dropped, not retried forever
        assert result.kind == "handler" and result.payload == {"batchItemFailures": []}, result.payload
    if "ResponseURL" in event:
        assert result.custom_resource_response["Status"] == "SUCCESS"
        assert result.custom_resource_response["RequestId"] == event["RequestId"]


def test_the_turn_streams_chunks_as_they_are_produced(invoker, standin):
    words = " ".join(f"word{i}" for i in range(40))
    standin.script({"text": words, "delay_ms": 40})  # about 14 deltas, 40 ms apart
    event = json.loads((ROOT / "events/chat-turn.json").read_text())
    result = invoker.invoke("ChatFunction", event)
    assert result.ok and result.kind == "stream"
    times = [t for t, _ in result.chunks]
    assert len(times) >= 10
    # the first bytes arrived well before the last: streamed, not buffered
    assert times[-1] - times[0] >= 0.3, times
    first_content = next(t for t, c in result.chunks if b"RunContent" in c)
    assert times[-1] - first_content >= 0.3
    events = sse.parse(result.body.decode())
    text = "".join(e["data"].get("content") or "" for e in events if e["event"] == "RunContent")
    assert text == words and events[-1]["event"] == "TurnCompleted"


def test_identity_comes_only_from_the_authorizer(invoker, stack):
    """A dev token without authorizer claims is refused, as in Lambda (ALLOW_UNSIGNED_JWT never reaches it)."""
    from chatcore.web.identity import unsigned_jwt

    event = api_event("GET", "/sessions", "/sessions", claims={})
    event["requestContext"].pop("authorizer")
    event["headers"]["Authorization"] = f"Bearer {unsigned_jwt({'sub': 'mallory'})}"
    result = invoker.invoke("ApiFunction", event)
    assert result.status == 401 and not result.ok
    assert json.loads(result.body)["code"] == "unauthorized"


def test_base64_bodies_and_query_strings_reach_the_app(invoker):
    claims = {"sub": "base64-body-user"}
    event = api_event("POST", "/sessions", "/sessions", claims=claims)
    event["body"] = base64.b64encode(json.dumps({"agent": "assistant", "title": "from base64"}).encode()).decode()
    event["isBase64Encoded"] = True
    created = invoker.invoke("ApiFunction", event)
    assert created.status == 201, created.body
    assert json.loads(created.body)["title"] == "from base64"
    listing = api_event("GET", "/sessions", "/sessions", claims=claims)
    listing["queryStringParameters"] = {"limit": "1"}
    listing["multiValueQueryStringParameters"] = {"limit": ["1"]}
    page = json.loads(invoker.invoke("ApiFunction", listing).body)
    assert [s["title"] for s in page["items"]] == ["from base64"]


def test_a_custom_resource_reports_failed_instead_of_hanging(stack):
    """An unreachable database: CloudFormation gets FAILED at once, the stack does not wait an hour."""
    event = json.loads((ROOT / "events/migrate-custom-resource-create.json").read_text())
    broken = {"MigrateFunction": {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"}}
    with Invoker(stack.env, env_vars=broken) as inv:
        result = inv.invoke("MigrateFunction", event)
    assert not result.ok
    response = result.custom_resource_response
    assert response["Status"] == "FAILED" and "OperationalError" in response["Reason"]
    assert response["LogicalResourceId"] == "DatabaseMigrations" and response["StackId"] == event["StackId"]
