"""Agents that act only with the user's approval (issue 24): a turn pauses on an acting tool's call
(``set_reminder``), is stored ``paused`` with its costs so far, and continues after the user's decision
from any instance (POST /sessions/{id}/turns/{run_id}/approvals): approved calls run, declined ones tell
the model so; two decisions at once make one continuation; a pause past APPROVAL_TTL expires."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from chatcore.wire import sse
from tests.support.turns import run_row

REMIND = "Remind me to call mom at 18:00"


def decide(user, session_id, run_id, decisions, *, client=None):
    c = client or user.client
    r = c.post(f"/sessions/{session_id}/turns/{run_id}/approvals", json={"decisions": decisions})
    events = sse.parse(r.text) if r.headers.get("content-type", "").startswith("text/event-stream") else []
    return r, events


def paused_turn(user, session_id, message=REMIND):
    r, events = user.turn(session_id, message=message)
    assert r.status_code == 200, r.text
    assert events[-1]["event"] == "TurnPaused", [e["event"] for e in events]
    return events[-1]["data"], events


def test_a_reminder_pauses_the_turn_and_approval_sets_it(user, standin, db_conn):
    session_id = user.new_session()
    paused, events = paused_turn(user, session_id)
    run_id = paused["run_id"]
    [call] = paused["pending"]
    assert call["tool"] == "set_reminder" and call["arguments"] == {"text": "call mom", "time": "18:00"}
    assert call["summary"] == "Remind you to call mom at 18:00 (Africa/Johannesburg)"
    assert run_row(db_conn, run_id)["status"] == "paused"
    assert not db_conn.execute("SELECT * FROM reminders WHERE run_id = %s", (run_id,)).fetchall()

    r, more = decide(user, session_id, run_id, [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert r.status_code == 200, r.text
    assert more[-1]["event"] == "TurnCompleted", [e["event"] for e in more]
    assert int(more[0]["id"]) == int(events[-1]["id"]) + 1
    assert run_row(db_conn, run_id)["status"] == "completed"
    [reminder] = db_conn.execute("SELECT * FROM reminders WHERE run_id = %s", (run_id,)).fetchall()
    assert reminder["text"] == "call mom"
    again, _ = decide(user, session_id, run_id, [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert again.status_code == 409 and again.json()["code"] == "turn-not-paused"


# ---- the must-show: paused on one instance, that instance stopped, an hour later approved on another


def _fx_rate_today(db_conn):
    return db_conn.execute("SELECT id, rate FROM fx_rates WHERE base = 'USD' AND quote = 'ZAR' "
                           "AND effective_date <= (now() AT TIME ZONE 'UTC')::date "
                           "ORDER BY effective_date DESC LIMIT 1").fetchone()


def test_paused_on_a_stopped_instance_an_hour_ago_approved_on_another_completes_and_costs_add_up(
        user, standin, db_conn, stack, tmp_path):
    import os
    from datetime import datetime, timezone

    from chatcore.money import rollup
    import signal

    from tests.support.serve_process import instance_process
    from tests.support.users import User

    session_id = user.new_session()
    # the instance that pauses the turn: a process of its own, killed once the turn is paused (as a
    # Lambda sandbox is recycled: no shutdown of any kind)
    instance = instance_process(dict(os.environ), tmp_path / "pausing.log")
    url, process = next(instance)
    pausing = User(url, sub=user.sub)
    paused, events = paused_turn(pausing, session_id)
    run_id = paused["run_id"]
    assert [e["event"] for e in events].count("TurnPaused") == 1
    process.send_signal(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL
    assert next(instance, None) is None
    with pytest.raises(httpx.TransportError):
        pausing.client.get("/healthz")

    # what the pause billed is stored now: the run's row and its priced messages
    before = db_conn.execute("SELECT id, cost_usd, cost_in_rands, fx_rate FROM chat_events WHERE run_id = %s "
                             "AND model_id IS NOT NULL ORDER BY id", (run_id,)).fetchall()
    assert len(before) == 1 and before[0]["cost_usd"] > 0
    row = run_row(db_conn, run_id)
    assert row["status"] == "paused" and row["cost_usd"] == before[0]["cost_usd"]
    assert Decimal(paused["cost"]["usd"]) == row["cost_usd"]
    shown = user.client.get(f"/sessions/{session_id}").json()
    assert shown["turn_paused"]["run_id"] == run_id
    assert [c["summary"] for c in shown["turn_paused"]["pending"]] == [
        "Remind you to call mom at 18:00 (Africa/Johannesburg)"]

    # an hour passes (the pause's clock moved back an hour: the TTL counts from it) and the rate changes
    db_conn.execute("UPDATE runs SET paused_at = paused_at - interval '1 hour', "
                    "started_at = started_at - interval '1 hour' WHERE id = %s", (run_id,))
    rate = _fx_rate_today(db_conn)
    db_conn.execute("UPDATE fx_rates SET rate = rate + 1 WHERE id = %s", (rate["id"],))
    try:
        [call] = paused["pending"]
        r, more = decide(user, session_id, run_id, [{"tool_call_id": call["tool_call_id"], "approved": True}])
    finally:
        db_conn.execute("UPDATE fx_rates SET rate = %s WHERE id = %s", (rate["rate"], rate["id"]))
    assert r.status_code == 200 and r.headers["x-run-id"] == run_id, r.text
    names = [e["event"] for e in more]
    assert names[-1] == "TurnCompleted" and "RunCompleted" in names, names
    # the decided call first, in agno's shape: approved, and what it returned
    assert names[0] == "ToolCallCompleted" and more[0]["data"]["run_id"] == run_id
    tool = more[0]["data"]["tool"]
    assert (tool["tool_call_id"], tool["confirmed"]) == (call["tool_call_id"], True)
    assert tool["result"].startswith("Reminder set: call mom, due ")
    ids = [int(e["id"]) for e in more]
    assert ids == list(range(int(events[-1]["id"]) + 1, int(events[-1]["id"]) + 1 + len(ids)))
    # every event of both stretches is what the registry of events documents (the spec's TurnEvent)
    assert [(e["event"], sse.check(e["event"], json.dumps(e["data"]))) for e in [*events, *more]
            if sse.check(e["event"], json.dumps(e["data"])) is not None] == []
    reminders = user.client.get("/me/reminders").json()["items"]
    assert [(x["text"], x["time_zone"], x["run_id"]) for x in reminders] == [("call mom", "Africa/Johannesburg", run_id)]
    due = datetime.fromisoformat(reminders[0]["due_at"])
    assert due > datetime.now(timezone.utc) and due.astimezone(timezone.utc).strftime("%H:%M") == "16:00"

    # the run's cost = the sum of its calls before and after the pause, each at the rate of its moment
    rows = db_conn.execute("SELECT cost_usd, cost_in_rands, fx_rate FROM chat_events WHERE run_id = %s "
                           "AND model_id IS NOT NULL ORDER BY id", (run_id,)).fetchall()
    assert len(rows) == 2 and rows[0]["fx_rate"] == rate["rate"] and rows[1]["fx_rate"] == rate["rate"] + 1
    usd, zar = sum(r["cost_usd"] for r in rows), sum(r["cost_in_rands"] for r in rows)
    row = run_row(db_conn, run_id)
    assert (row["status"], row["cost_usd"], row["cost_in_rands"]) == ("completed", usd, zar)
    final = more[-1]["data"]
    assert (Decimal(final["cost"]["usd"]), Decimal(final["cost"]["zar"])) == (usd, zar)
    usage = user.client.get("/usage").json()
    assert (Decimal(usage["totals"]["cost"]["usd"]), Decimal(usage["totals"]["cost"]["zar"])) == (usd, zar)
    assert usage["totals"]["turns"] == 1
    today = datetime.now(timezone.utc).date()
    rollup.rollup(db_conn, today, today)
    rolled = db_conn.execute("SELECT sum(cost_usd) AS usd, sum(cost_in_rands) AS zar, sum(turns) AS turns "
                             "FROM daily_costs d JOIN users u ON u.id = d.user_id WHERE u.sub = %s",
                             (user.sub,)).fetchone()
    assert (rolled["usd"], rolled["zar"], rolled["turns"]) == (usd, zar, 1)


def test_declined_writes_no_reminder_and_the_model_reads_that_the_user_declined(user, standin, db_conn):
    session_id = user.new_session()
    paused, _ = paused_turn(user, session_id)
    [call] = paused["pending"]
    standin.reset()
    r, more = decide(user, session_id, paused["run_id"],
                     [{"tool_call_id": call["tool_call_id"], "approved": False, "note": "I already called her"}])
    assert r.status_code == 200 and more[-1]["event"] == "TurnCompleted", r.text
    declined = more[0]["data"]["tool"]
    assert more[0]["event"] == "ToolCallCompleted" and declined["confirmed"] is False
    assert declined["confirmation_note"] == "I already called her" and "declined" in declined["result"]
    assert not db_conn.execute("SELECT 1 FROM reminders WHERE run_id = %s", (paused["run_id"],)).fetchall()
    assert user.client.get("/me/reminders").json()["items"] == []
    [request] = standin.requests()
    last = request["body"]["messages"][-1]
    [result] = [b for b in last["content"] if b.get("type") == "tool_result"]
    assert last["role"] == "user" and result["tool_use_id"] == call["tool_call_id"]
    assert "declined" in json.dumps(result["content"]) and "I already called her" in json.dumps(result["content"])
    decided = db_conn.execute("SELECT status, note FROM approvals WHERE run_id = %s", (paused["run_id"],)).fetchone()
    assert (decided["status"], decided["note"]) == ("declined", "I already called her")
    # the next turn carries the declined call and its result as history, which the API accepts
    r, events = user.turn(session_id, message="thanks")
    assert events[-1]["event"] == "TurnCompleted", r.text


def test_two_decisions_at_the_same_moment_make_one_continuation(user, standin, db_conn, server_url):
    import threading

    session_id = user.new_session()
    paused, _ = paused_turn(user, session_id)
    [call] = paused["pending"]
    standin.reset()
    standin.script({"text": "Done: I will remind you.", "delay_ms": 50})
    body = [{"tool_call_id": call["tool_call_id"], "approved": True}]
    barrier, answers = threading.Barrier(2), []

    def one():
        with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as c:
            barrier.wait()
            answers.append(decide(user, session_id, paused["run_id"], body, client=c))

    threads = [threading.Thread(target=one) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    statuses = sorted(r.status_code for r, _ in answers)
    assert statuses == [200, 409], [r.text for r, _ in answers]
    [(lost, _)] = [a for a in answers if a[0].status_code == 409]
    assert lost.json()["code"] == "turn-not-paused" and lost.headers["content-type"] == "application/problem+json"
    [(_, events)] = [a for a in answers if a[0].status_code == 200]
    assert events[-1]["event"] == "TurnCompleted"
    assert len(standin.requests()) == 1  # one continuation: one model call
    assert db_conn.execute("SELECT count(*) AS n FROM reminders WHERE run_id = %s",
                           (paused["run_id"],)).fetchone()["n"] == 1


def test_an_expired_pause_runs_nothing_and_is_409_approval_expired(user, standin, db_conn):
    session_id = user.new_session()
    paused, _ = paused_turn(user, session_id)
    [call] = paused["pending"]
    db_conn.execute("UPDATE runs SET paused_at = paused_at - interval '25 hours' WHERE id = %s", (paused["run_id"],))
    standin.reset()
    r, _ = decide(user, session_id, paused["run_id"], [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert r.status_code == 409 and r.json()["code"] == "approval-expired", r.text
    assert standin.requests() == []
    assert run_row(db_conn, paused["run_id"])["status"] == "expired"
    assert not db_conn.execute("SELECT 1 FROM reminders WHERE run_id = %s", (paused["run_id"],)).fetchall()
    assert db_conn.execute("SELECT status FROM approvals WHERE run_id = %s",
                           (paused["run_id"],)).fetchone()["status"] == "expired"
    again, _ = decide(user, session_id, paused["run_id"], [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert again.status_code == 409 and again.json()["code"] == "approval-expired"
    # the session goes on: a new turn is not refused
    r, events = user.turn(session_id, message="hello again")
    assert events[-1]["event"] == "TurnCompleted", r.text


def test_a_team_members_acting_tool_pauses_and_continues_the_team_run(user, standin, db_conn):
    r = user.client.post("/sessions", json={"team": "planner"})
    session_id = r.json()["id"]
    standin.script({"tool_use": {"name": "delegate_task_to_member",
                                 "input": {"member_id": "organiser", "task": REMIND}}})
    paused, events = paused_turn(user, session_id)
    run_id = paused["run_id"]
    [call] = paused["pending"]
    assert (call["tool"], call["agent_name"]) == ("set_reminder", "organiser")
    assert "RunPaused" not in [e["event"] for e in events]
    member = db_conn.execute("SELECT id, status FROM runs WHERE parent_run_id = %s", (run_id,)).fetchone()
    assert member["status"] == "paused" and run_row(db_conn, run_id)["status"] == "paused"

    standin.reset()
    r, more = decide(user, session_id, run_id, [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert r.status_code == 200, r.text
    names = [e["event"] for e in more]
    assert names[-1] == "TurnCompleted" and "RunCompleted" in names and "TeamRunCompleted" in names, names
    # the member first (its tool's result), then the leader (the member's answer as its delegation's result)
    member_request, leader_request = standin.requests()
    assert member_request["body"]["messages"][-1]["content"][0]["tool_use_id"] == call["tool_call_id"]
    assert more[0]["event"] == "ToolCallCompleted" and more[0]["data"]["agent_name"] == "organiser"
    assert more[0]["data"]["run_id"] == str(member["id"]) and more[0]["data"]["parent_run_id"] == run_id
    leader_result = leader_request["body"]["messages"][-1]["content"][0]
    assert leader_result["type"] == "tool_result" and "Reminder set" in json.dumps(leader_result["content"])
    assert db_conn.execute("SELECT status FROM runs WHERE id = %s", (member["id"],)).fetchone()["status"] == "completed"
    assert [x["text"] for x in user.client.get("/me/reminders").json()["items"]] == ["call mom"]
    rows = db_conn.execute("SELECT ce.cost_usd FROM chat_events ce JOIN runs r ON r.id = ce.run_id "
                           "WHERE (r.id = %s OR r.parent_run_id = %s) AND ce.model_id IS NOT NULL",
                           (run_id, run_id)).fetchall()
    assert len(rows) == 4  # leader and member, before and after the pause
    assert run_row(db_conn, run_id)["cost_usd"] == sum(x["cost_usd"] for x in rows)
    # the next turn of the team session replays the leader's history, which the API accepts
    r, events = user.turn(session_id, message="thanks")
    assert events[-1]["event"] == "TurnCompleted", r.text


# ---- the rules around a pause: whose it is, what a decision must hold, a new message, a stop


def test_another_users_paused_turn_is_404_and_bad_decisions_are_422(user, other_user, standin, db_conn):
    session_id = user.new_session()
    paused, _ = paused_turn(user, session_id)
    run_id = paused["run_id"]
    [call] = paused["pending"]
    body = [{"tool_call_id": call["tool_call_id"], "approved": True}]
    r, _ = decide(other_user, session_id, run_id, body)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert other_user.client.get(f"/sessions/{session_id}").status_code == 404
    for decisions in ([], [{"tool_call_id": "toolu_other", "approved": True}],
                      body + body, [{"tool_call_id": call["tool_call_id"]}],
                      [{"tool_call_id": call["tool_call_id"], "approved": True, "note": "x" * 501}]):
        r, _ = decide(user, session_id, run_id, decisions)
        assert r.status_code == 422 and r.json()["code"] == "invalid-input", (decisions, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r, _ = decide(user, session_id, run_id, [{"tool_call_id": "toolu_other", "approved": True}])
    assert r.json()["pending"] == [call["tool_call_id"]]
    assert run_row(db_conn, run_id)["status"] == "paused"  # nothing was decided


def test_a_new_message_while_a_turn_is_paused_is_409_naming_it_and_a_stop_closes_the_pause(user, standin, db_conn):
    session_id = user.new_session()
    paused, events = paused_turn(user, session_id)
    run_id = paused["run_id"]
    r, _ = user.turn(session_id, message="What is 2 + 2?")
    assert r.status_code == 409 and r.json()["code"] == "turn-paused" and r.json()["run_id"] == run_id
    # the events route ends the paused stream at TurnPaused; resumed after it: nothing to follow (204)
    replay = user.client.get(f"/sessions/{session_id}/turns/{run_id}/events")
    assert [e["event"] for e in sse.parse(replay.text)][-1] == "TurnPaused"
    after = user.client.get(f"/sessions/{session_id}/turns/{run_id}/events",
                            headers={"Last-Event-ID": events[-1]["id"]})
    assert after.status_code == 204
    stopped = user.client.post(f"/sessions/{session_id}/turns/{run_id}/cancel")
    assert stopped.status_code == 202, stopped.text
    assert run_row(db_conn, run_id)["status"] == "cancelled"
    assert user.client.get(f"/sessions/{session_id}").json().get("turn_paused") is None
    [call] = paused["pending"]
    r, _ = decide(user, session_id, run_id, [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert r.status_code == 409 and r.json()["code"] == "turn-not-paused" and r.json()["run_status"] == "cancelled"
    assert not db_conn.execute("SELECT 1 FROM reminders WHERE run_id = %s", (run_id,)).fetchall()
    # the session goes on; the stopped pause's unanswered call is not replayed (the API would refuse it)
    r, events = user.turn(session_id, message="What is 2 + 2?")
    assert events[-1]["event"] == "TurnCompleted", r.text


def test_a_decided_turn_is_followed_through_the_events_route_with_rising_ids(user, standin):
    session_id = user.new_session()
    paused, events = paused_turn(user, session_id)
    [call] = paused["pending"]
    r, more = decide(user, session_id, paused["run_id"], [{"tool_call_id": call["tool_call_id"], "approved": True}])
    assert more[-1]["event"] == "TurnCompleted"
    # another device that saw the pause follows the rest after the TurnPaused event's id
    follow = user.client.get(f"/sessions/{session_id}/turns/{paused['run_id']}/events",
                             headers={"Last-Event-ID": events[-1]["id"]})
    assert [(e["id"], e["event"]) for e in sse.parse(follow.text)] == [(e["id"], e["event"]) for e in more]


def test_reminders_are_paged_exported_and_deleted_with_the_account(user, standin, server_url, db_conn):
    from tests.support.users import User

    owner = User(server_url)
    session_id = owner.new_session()
    for at in ("07:15", "18:00", "21:30"):
        paused, _ = paused_turn(owner, session_id, message=f"Remind me to water the plants at {at}")
        [call] = paused["pending"]
        r, more = decide(owner, session_id, paused["run_id"], [{"tool_call_id": call["tool_call_id"], "approved": True}])
        assert more[-1]["event"] == "TurnCompleted", r.text
    first = owner.client.get("/me/reminders", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = owner.client.get("/me/reminders", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert owner.client.get("/me/reminders", params={"cursor": "%%%"}).status_code == 422
    assert user.client.get("/me/reminders").json()["items"] == []  # another user's are not listed

    from chatcore.account import archive
    from chatcore.store import exports

    with db_conn.transaction():
        export, _ = exports.start_export(db_conn, owner.sub, building_seconds=600, cooldown_seconds=0)
    job = exports.export_job(db_conn, export["id"])
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as scratch:
        path = f"{scratch}/export.zip"
        counts = archive.write_archive(path, scratch, job)
        with zipfile.ZipFile(path) as zf:
            actions = json.loads(zf.read("actions.json"))
    assert (counts.reminders, counts.approvals) == (3, 3)
    assert sorted(r["text"] for r in actions["reminders"]) == ["water the plants"] * 3
    assert {a["status"] for a in actions["approvals"]} == {"approved"}
    assert all(a["summary"].startswith("Remind you to water the plants at ") for a in actions["approvals"])

    r = owner.client.delete("/me")
    assert r.status_code in (200, 202), r.text
    user_row = db_conn.execute("SELECT id FROM users WHERE sub = %s", (owner.sub,)).fetchone()
    assert owner.client.get("/me/reminders").json()["items"] == []
    if r.status_code == 200:
        assert user_row is None
        assert db_conn.execute("SELECT count(*) AS n FROM reminders r WHERE r.text = 'water the plants' "
                               "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id)").fetchone()["n"] == 0


def test_a_paused_turn_is_gone_with_the_account(user, standin, server_url, db_conn):
    from tests.support.users import User

    owner = User(server_url)
    session_id = owner.new_session()
    paused, _ = paused_turn(owner, session_id)
    r = owner.client.delete("/me")
    assert r.status_code == 200, r.text
    assert run_row(db_conn, paused["run_id"]) is None
    assert not db_conn.execute("SELECT 1 FROM approvals WHERE run_id = %s", (paused["run_id"],)).fetchall()


def test_the_scheduled_run_expires_old_pauses_before_the_retention_period(user, standin, db_conn):
    from chatcore import scheduled

    assert list(scheduled.HOUSEKEEPING).index("approvals_expired") < list(scheduled.HOUSEKEEPING).index("retention")
    session_id = user.new_session()
    old, _ = paused_turn(user, session_id)
    other = user.new_session()
    fresh, _ = paused_turn(user, other)
    db_conn.execute("UPDATE runs SET paused_at = paused_at - interval '2 days' WHERE id = %s", (old["run_id"],))
    assert scheduled.expire_approvals(0.0) >= 1
    assert run_row(db_conn, old["run_id"])["status"] == "expired"
    assert run_row(db_conn, fresh["run_id"])["status"] == "paused"
    assert user.client.get(f"/sessions/{session_id}").json().get("turn_paused") is None
    assert user.client.get(f"/sessions/{other}").json()["turn_paused"]["run_id"] == fresh["run_id"]


def test_the_continuation_reserves_the_budget_again_before_any_model_call(user, standin, db_conn):
    session_id = user.new_session()
    paused, _ = paused_turn(user, session_id)
    [call] = paused["pending"]
    body = [{"tool_call_id": call["tool_call_id"], "approved": True}]
    # what the pause spent fits the budget; the most the continuation may cost does not
    db_conn.execute("UPDATE users SET monthly_budget_zar = 0.10 WHERE sub = %s", (user.sub,))
    standin.reset()
    r, _ = decide(user, session_id, paused["run_id"], body)
    assert r.status_code == 402 and r.json()["code"] == "budget-exceeded", r.text
    assert standin.requests() == [] and run_row(db_conn, paused["run_id"])["status"] == "paused"
    assert not db_conn.execute("SELECT 1 FROM reminders WHERE run_id = %s", (paused["run_id"],)).fetchall()
    db_conn.execute("UPDATE users SET monthly_budget_zar = 1000 WHERE sub = %s", (user.sub,))
    r, more = decide(user, session_id, paused["run_id"], body)
    assert r.status_code == 200 and more[-1]["event"] == "TurnCompleted", r.text
    assert run_row(db_conn, paused["run_id"])["reserved_zar"] == 0  # released when the run is stored


def test_the_turn_metrics_count_a_paused_turn_once_and_each_stretch_of_its_cost(user, standin, monkeypatch, capsys):
    from chatcore import observability
    from tests.support.metrics import emf_lines

    monkeypatch.setattr(observability, "in_lambda", lambda: True)
    session_id = user.new_session()
    paused, _ = paused_turn(user, session_id)
    [call] = paused["pending"]
    r, more = decide(user, session_id, paused["run_id"], [{"tool_call_id": call["tool_call_id"], "approved": True}])
    final = more[-1]["data"]
    lines = [m for m in emf_lines(capsys.readouterr().out) if m.get("run_id") == paused["run_id"]]
    assert [(m["Turns"], m["TurnsPaused"]) for m in lines] == [([0.0], [1.0]), ([1.0], [0.0])]
    cost = sum(Decimal(str(m["CostUSD"][0])) for m in lines)
    assert cost == Decimal(final["cost"]["usd"]).normalize()  # the stretches add up to the run, once
    assert sum(m["OutputTokens"][0] for m in lines) == final["usage"]["output_tokens"]


def test_the_model_may_call_another_acting_tool_and_the_run_pauses_again(user, standin, db_conn):
    session_id = user.new_session()
    paused, events = paused_turn(user, session_id)
    [first] = paused["pending"]
    standin.reset()
    standin.script({"tool_use": {"name": "set_reminder", "input": {"text": "call dad", "time": "19:00"}}})
    r, again = decide(user, session_id, paused["run_id"], [{"tool_call_id": first["tool_call_id"], "approved": True}])
    assert again[-1]["event"] == "TurnPaused" and again[-1]["data"]["run_id"] == paused["run_id"], r.text
    [second] = again[-1]["data"]["pending"]
    assert second["summary"] == "Remind you to call dad at 19:00 (Africa/Johannesburg)"
    assert run_row(db_conn, paused["run_id"])["status"] == "paused"
    r, done = decide(user, session_id, paused["run_id"], [{"tool_call_id": second["tool_call_id"], "approved": True}])
    assert done[-1]["event"] == "TurnCompleted", r.text
    assert [int(e["id"]) for e in [*events, *again, *done]] == list(range(1, len(events) + len(again) + len(done) + 1))
    assert sorted(x["text"] for x in user.client.get("/me/reminders").json()["items"]) == ["call dad", "call mom"]
    rows = db_conn.execute("SELECT cost_usd FROM chat_events WHERE run_id = %s AND model_id IS NOT NULL",
                           (paused["run_id"],)).fetchall()
    assert len(rows) == 3 and run_row(db_conn, paused["run_id"])["cost_usd"] == sum(x["cost_usd"] for x in rows)
    assert Decimal(done[-1]["data"]["cost"]["usd"]) == sum(x["cost_usd"] for x in rows)
    statuses = db_conn.execute("SELECT tool_call_id, status FROM approvals WHERE run_id = %s",
                               (paused["run_id"],)).fetchall()
    assert {s["tool_call_id"]: s["status"] for s in statuses} == {first["tool_call_id"]: "approved",
                                                                  second["tool_call_id"]: "approved"}
