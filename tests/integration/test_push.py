"""Push notifications (issue 25): devices registered through the API; a turn whose client left gets
one ``turn_finished`` push, a paused turn one ``approval_needed``, a budget crossing 80 % then 100 %
one ``budget`` push each; a platform that refuses (a disabled endpoint) or an SNS that is down
changes nothing of the turn. Sent through moto's SNS (the local stack's), read back from it."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import boto3
import httpx
import pytest

from chatcore.money import budgets
from chatcore.notify import sns
from tests.support.pushes import endpoint_of, new_token, pushes_to, register, wait_for_pushes
from tests.support.streams import read_events
from tests.support.turns import run_row

REMIND = "Remind me to call mom at 18:00"
SLOW = [{"text": "a slow answer that the phone never sees " * 4, "delay_ms": 30}]


def left_after_first_event(user, server_url, sid, message="slow please") -> str:
    """Start a turn, read its first event and drop the connection (the app was suspended); its run id."""
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=30) as client:
        with client.stream("POST", f"/sessions/{sid}/turns", json={"message": message}) as r:
            assert r.status_code == 200
            run_id = r.headers["x-run-id"]
            events = read_events(r, stop_after=lambda ev: len(ev) == 1)
            assert events[0]["id"] == "1"
    return run_id


def wait_finished(db_conn, run_id, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = run_row(db_conn, run_id)
        if run["status"] != "running":
            return run
        time.sleep(0.1)
    raise AssertionError("the turn did not finish")


def stored(db_conn, run_id):
    rows = db_conn.execute("SELECT role, message_parts, cost_in_rands FROM chat_events WHERE run_id = %s ORDER BY id",
                           (run_id,)).fetchall()
    run = run_row(db_conn, run_id)
    return [r["role"] for r in rows], run["status"], run["cost_in_rands"], run["output_tokens"]


# ---- the routes


def test_devices_are_registered_once_per_token_listed_moved_and_deleted(user, other_user, stack):
    token = new_token()
    first = register(user, token, locale="af-ZA")
    assert first["platform"] == "apns" and first["locale"] == "af-ZA" and first["push_enabled"] is True
    again = user.client.post("/me/devices", json={"platform": "apns", "token": token, "app_version": "1.1.0"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.json()["app_version"] == "1.1.0" and again.json()["locale"] == "af-ZA"
    assert [d["id"] for d in user.client.get("/me/devices").json()["items"]] == [first["id"]]
    assert endpoint_of(token) is not None  # its SNS endpoint was made on registration
    # another user's DELETE of it is 404; the token registered by that user moves
    r = other_user.client.delete(f"/me/devices/{first['id']}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    moved = other_user.client.post("/me/devices", json={"platform": "apns", "token": token})
    assert moved.status_code == 201
    assert user.client.get("/me/devices").json()["items"] == []
    assert [d["id"] for d in other_user.client.get("/me/devices").json()["items"]] == [moved.json()["id"]]
    assert user.client.delete(f"/me/devices/{moved.json()['id']}").status_code == 404
    assert other_user.client.delete(f"/me/devices/{moved.json()['id']}").status_code == 204
    assert other_user.client.get("/me/devices").json()["items"] == []
    assert endpoint_of(token) is None  # its endpoint went with it
    assert other_user.client.delete(f"/me/devices/{uuid.uuid4()}").status_code == 404


def test_bad_devices_are_problems(user):
    for body in ({"platform": "webpush", "token": "abc"}, {"platform": "fcm", "token": ""},
                 {"platform": "fcm", "token": "a b"}, {"platform": "fcm", "token": "x", "locale": "not a locale"},
                 {"platform": "fcm"}, {"platform": "fcm", "token": "x", "extra": 1}):
        r = user.client.post("/me/devices", json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == "invalid-input"


# ---- turn_finished


def test_a_turn_whose_client_left_gets_one_push_and_resumes_from_it(user, standin, db_conn, server_url):
    token = new_token()
    register(user, token)
    sid = user.new_session()
    standin.script(SLOW)
    run_id = left_after_first_event(user, server_url, sid)
    [push] = wait_for_pushes(token)
    data = push["data"]
    assert data["kind"] == "turn_finished" and data["run_id"] == run_id and data["session_id"] == sid
    assert data["status"] == "completed"
    last, final = int(data["last_event_id"]), int(data["final_event_id"])
    assert 1 <= last < final
    # generic text by default: no chat content on the lock screen
    assert push["title"] == "Your answer is ready" and push["body"] == "Open the app to read it."
    assert push["collapse"] == sid
    # the events route from that id returns the rest, to the final event
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=30) as c:
        with c.stream("GET", f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": str(last)}) as r:
            rest = read_events(r)
    assert [int(e["id"]) for e in rest] == list(range(last + 1, final + 1))
    assert rest[-1]["event"] == "TurnCompleted"
    time.sleep(1)
    assert len(pushes_to(token)) == 1  # exactly one
    assert db_conn.execute("SELECT devices FROM pushes WHERE kind = 'turn_finished' AND key = %s",
                           (run_id,)).fetchone()["devices"] == 1


def test_a_turn_read_to_its_end_or_by_a_follower_sends_no_push(user, standin, db_conn, server_url):
    token = new_token()
    register(user, token, platform="fcm")
    sid = user.new_session()
    r, events = user.turn(sid, message="What is 12 * 7?")
    assert events[-1]["event"] == "TurnCompleted"
    # the app went to the background, and a resumed stream (the events route) read the final event
    standin.script(SLOW)
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=30) as client:
        with client.stream("POST", f"/sessions/{sid}/turns", json={"message": "slow please"}) as r:
            run_id = r.headers["x-run-id"]
            read_events(r, stop_after=lambda ev: len(ev) == 1)
        with client.stream("GET", f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": "1"}) as r:
            assert read_events(r)[-1]["event"] == "TurnCompleted"
    deadline = time.monotonic() + 5
    while run_row(db_conn, run_id)["final_delivered_at"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_row(db_conn, run_id)["final_delivered_at"] is not None  # the follower recorded it
    time.sleep(3)  # past PUSH_DELIVERY_GRACE_SECONDS
    assert pushes_to(token) == []


def test_the_preview_only_after_the_user_opts_in_and_afrikaans_titles(user, standin, db_conn, server_url):
    token = new_token()
    register(user, token, platform="fcm", locale="af_ZA")
    settings = user.client.get("/me/settings").json()
    assert settings == {"memory": True, "push_preview": False}
    sid = user.new_session()
    standin.script(SLOW)
    left_after_first_event(user, server_url, sid)
    [generic] = wait_for_pushes(token)
    assert generic["title"] == "Jou antwoord is gereed" and generic["body"] == "Maak die app oop om dit te lees."
    assert "slow answer" not in str(generic)
    r = user.client.put("/me/settings", json={"memory": True, "push_preview": True})
    assert r.status_code == 200 and r.json() == {"memory": True, "push_preview": True}
    standin.script(SLOW)
    left_after_first_event(user, server_url, sid)
    _, preview = wait_for_pushes(token, 2)
    assert preview["title"] == "Jou antwoord is gereed"
    assert preview["body"].startswith("a slow answer that the phone never sees") and len(preview["body"]) <= 100
    assert preview["collapse"] == sid == generic["collapse"]


# ---- approval_needed


def test_a_paused_turn_sends_one_approval_needed_push(user, standin, db_conn):
    token = new_token()
    register(user, token)
    sid = user.new_session()
    _, events = user.turn(sid, message=REMIND)
    assert events[-1]["event"] == "TurnPaused"
    [push] = wait_for_pushes(token)
    data = push["data"]
    assert data["kind"] == "approval_needed" and data["run_id"] == events[-1]["data"]["run_id"]
    assert data["summary"] == "Remind you to call mom at 18:00 (Africa/Johannesburg)"
    assert data["last_event_id"] == data["paused_event_id"] == events[-1]["id"]
    assert push["title"] == "Approval needed" and push["body"] == "An action is waiting for your approval."
    time.sleep(1)
    assert len(pushes_to(token)) == 1


# ---- budget


def test_crossing_80_then_100_percent_of_the_budget_sends_one_push_each(user, standin, db_conn, server_url):
    token = new_token()
    register(user, token)
    sid = user.new_session()
    user.turn(sid, message="hello")  # the user exists, with some spend
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    budgets.set_budget(db_conn, user.sub, Decimal("100.00"))
    spent = budgets.month_spend(db_conn, uid)
    # what a deleted session cost this month brings the spend just under 80 %
    db_conn.execute(
        "INSERT INTO deleted_session_usage (id, user_id, session_id, day, kind, name, model_id, cost_in_rands) "
        "VALUES (%s, %s, %s, current_date, 'agent', 'assistant', 'claude-sonnet-5-5', %s)",
        (uuid.uuid4(), uid, uuid.uuid4(), Decimal("79.9999") - spent))
    _, events = user.turn(sid, message="hello again")
    assert events[-1]["event"] == "TurnCompleted"
    [warning] = wait_for_pushes(token)
    assert warning["data"]["kind"] == "budget" and warning["data"]["threshold"] == "80"
    assert warning["body"] == "You have used 80% of this month's budget."
    user.turn(sid, message="and again")  # still past 80 %: no second warning
    time.sleep(1)
    assert len(pushes_to(token)) == 1
    # while a turn runs, the budget is lowered under what the month will have cost when it ends
    standin.script(SLOW)
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=30) as client:
        with client.stream("POST", f"/sessions/{sid}/turns", json={"message": "slow please"}) as r:
            budgets.set_budget(db_conn, user.sub, budgets.month_spend(db_conn, uid).quantize(Decimal("0.01")))
            assert read_events(r)[-1]["event"] == "TurnCompleted"
    _, reached = wait_for_pushes(token, 2)
    assert reached["data"]["kind"] == "budget" and reached["data"]["threshold"] == "100"
    assert reached["title"] == "Budget reached"
    assert user.turn(sid, message="one more")[0].status_code == 402
    time.sleep(1)
    assert len(pushes_to(token)) == 2
    month = budgets.month_bounds()[0].strftime("%Y-%m")
    assert {r["key"] for r in db_conn.execute("SELECT key FROM pushes WHERE user_id = %s AND kind = 'budget'",
                                               (uid,)).fetchall()} == {f"{month}:80", f"{month}:100"}


# ---- the platform refusing, SNS down


def test_a_disabled_endpoint_changes_nothing_of_the_turn_and_its_device_is_gone(
        user, other_user, standin, db_conn, server_url, stack):
    token = new_token()
    device = register(user, token)
    sns_client = boto3.client("sns", endpoint_url=stack.env["AWS_ENDPOINT_URL_SNS"], region_name=stack.env["AWS_REGION"])
    sns_client.set_endpoint_attributes(EndpointArn=endpoint_of(token).arn, Attributes={"Enabled": "false"})
    # the same turn of a user without a device
    baseline_sid = other_user.new_session()
    standin.script(SLOW)
    baseline = wait_finished(db_conn, left_after_first_event(other_user, server_url, baseline_sid))
    sid = user.new_session()
    standin.script(SLOW)
    run_id = left_after_first_event(user, server_url, sid)
    wait_finished(db_conn, run_id)
    deadline = time.monotonic() + 20
    while user.client.get("/me/devices").json()["items"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert user.client.get("/me/devices").json()["items"] == []  # gone after the attempt
    assert endpoint_of(token) is None
    assert stored(db_conn, run_id) == stored(db_conn, baseline["id"])
    assert run_row(db_conn, run_id)["status"] == "completed"
    # registered again (the app reinstalled): a new device with a working endpoint
    again = register(user, token)
    assert again["id"] != device["id"] and again["push_enabled"] is True


@pytest.mark.parametrize("down", ["stalled", "refusing"])
def test_sns_down_changes_nothing_of_the_turn(down, user, other_user, standin, db_conn, server_url,
                                              sns_behind_a_proxy, monkeypatch):
    from chatcore.config import get_settings
    from local.ports import free_port

    token = new_token()
    register(user, token)
    if down == "stalled":
        sns_behind_a_proxy.stalled.set()  # SNS accepts connections and answers nothing
    else:  # nothing listens: every connection is refused (restored with the proxy's fixture)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", f"http://127.0.0.1:{free_port()}")
        get_settings.cache_clear()
    sns.forget_client()  # no connection kept alive from before: the next call meets the fault
    baseline_sid = other_user.new_session()
    standin.script(SLOW)
    baseline = wait_finished(db_conn, left_after_first_event(other_user, server_url, baseline_sid))
    sid = user.new_session()
    started = time.monotonic()
    r, events = user.turn(sid, message=REMIND)  # a pause: its push is sent after its final event
    assert events[-1]["event"] == "TurnPaused" and time.monotonic() - started < 10
    standin.script(SLOW)
    other = user.new_session()
    run_id = left_after_first_event(user, server_url, other)
    assert wait_finished(db_conn, run_id)["status"] == "completed"
    assert stored(db_conn, run_id) == stored(db_conn, baseline["id"])
    assert pushes_to(token) == []
    assert len(user.client.get("/me/devices").json()["items"]) == 1  # kept: SNS was down, not the device


# ---- the export and DELETE /me


def test_devices_are_exported_and_deleted_with_the_account(user, other_user, standin, db_conn, server_url):
    import io
    import json
    import zipfile

    phone, tablet, theirs = new_token(), new_token(), new_token()
    register(user, phone, locale="af-ZA")
    register(user, tablet, platform="fcm")
    register(other_user, theirs)
    sid = user.new_session()
    standin.script(SLOW)
    run_id = left_after_first_event(user, server_url, sid)
    wait_for_pushes(phone)
    wait_for_pushes(tablet)
    r = user.client.post("/me/export")
    assert r.status_code in (200, 202), r.text
    body = r.json()
    deadline = time.monotonic() + 30
    while body["status"] == "building" and time.monotonic() < deadline:
        time.sleep(0.1)
        body = user.client.get("/me/export").json()
    assert body["status"] == "ready" and body["contents"]["devices"] == 2
    zf = zipfile.ZipFile(io.BytesIO(httpx.get(body["url"], timeout=60).content))
    doc = json.loads(zf.read("devices.json"))
    assert doc["push_preview"] is False
    assert [(d["platform"], d["token"], d["locale"]) for d in doc["devices"]] == [
        ("apns", phone, "af-ZA"), ("fcm", tablet, None)]
    assert [(p["kind"], p["key"], p["devices"]) for p in doc["pushes"]] == [("turn_finished", run_id, 2)]
    assert theirs not in zf.read("devices.json").decode()
    assert "devices.json" in zf.read("README.txt").decode()
    r = user.client.delete("/me")
    assert r.status_code == 200, r.text
    assert endpoint_of(phone) is None and endpoint_of(tablet) is None  # their endpoints went too
    assert endpoint_of(theirs) is not None
    assert db_conn.execute("SELECT count(*) AS n FROM devices WHERE token IN (%s, %s)",
                           (phone, tablet)).fetchone()["n"] == 0
    assert user.client.get("/me/devices").json()["items"] == []  # the same identity: a new, empty account
