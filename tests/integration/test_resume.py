"""A phone on a flaky network, against two instances on one database: a turn's stream dropped on one
instance and resumed on the other with ``Last-Event-ID``, a stop sent through the other instance,
heartbeats on live and resumed streams while the model is silent, replays and their pruning.

The second instance is a separate process (``local.server`` under uvicorn): it shares nothing with
this one but Postgres, S3 and the stand-in model, as two Lambda sandboxes share nothing.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from chatcore.wire import sse
from tests.support.serve_process import another_instance
from tests.support.streams import TurnInThread, raw_frames, read_events
from tests.support.users import User


@pytest.fixture(scope="module")
def second_url(stack, tmp_path_factory):
    """Another instance of the API: its own process, the same database, S3 and model."""
    yield from another_instance(dict(os.environ), tmp_path_factory.mktemp("instance2") / "server.log")


def content_of(events: list[dict]) -> str:
    return "".join(e["data"]["content"] for e in events if e["event"] == "RunContent"
                   and isinstance(e["data"].get("content"), str))


def assistant_text(db_conn, run_id: str) -> str:
    rows = db_conn.execute("SELECT message_parts FROM chat_events WHERE run_id = %s AND role = 'assistant' "
                           "ORDER BY id", (run_id,)).fetchall()
    return "".join(r["message_parts"].get("content") or "" for r in rows)


def test_a_dropped_stream_resumes_on_the_other_instance_with_no_gap_and_no_repeat(
        user, standin, db_conn, server_url, second_url):
    answer = " ".join(f"word{i}" for i in range(60))
    standin.script([{"text": answer, "delay_ms": 40}])
    sid = user.new_session()
    with httpx.Client(base_url=second_url, headers=user.headers, timeout=60) as instance1:
        with instance1.stream("POST", f"/sessions/{sid}/turns", json={"message": "talk", "client_turn_id": "r-1"}) as r:
            assert r.status_code == 200
            run_id = r.headers["x-run-id"]
            before = read_events(r, stop_after=lambda ev: sum(e["event"] == "RunContent" for e in ev) == 5)
        # the phone lost the connection after five pieces of the answer
    assert before[0]["data"]["run_id"] == run_id  # the run id is in the first event too
    last_id = before[-1]["id"]
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as instance2:
        with instance2.stream("GET", f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": last_id}) as r:
            assert r.status_code == 200 and r.headers["x-run-id"] == run_id
            after = read_events(r)
    ids = [int(e["id"]) for e in before + after]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no repeat
    assert after[-1]["event"] == "TurnCompleted"
    assert content_of(before) + content_of(after) == answer == assistant_text(db_conn, run_id)
    # the finished turn replays from the start, on either instance, with the same ids and data
    for url in (server_url, second_url):
        replay = httpx.get(f"{url}/sessions/{sid}/turns/{run_id}/events", headers=user.headers, timeout=30)
        assert sse.parse(replay.text) == before + after
    # ?after=N is the same as Last-Event-ID
    tail = httpx.get(f"{server_url}/sessions/{sid}/turns/{run_id}/events?after={last_id}", headers=user.headers)
    assert sse.parse(tail.text) == after
    # someone else gets 404, as for a turn that does not exist
    stranger = User(server_url)
    r = stranger.client.get(f"/sessions/{sid}/turns/{run_id}/events")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = user.client.get(f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": "five"})
    assert r.status_code == 422
    # the retried POST (same client_turn_id) resumes too, instead of running the turn again
    n_requests = len(standin.requests())
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "talk", "client_turn_id": "r-1"},
                         headers={"Last-Event-ID": last_id})
    assert sse.parse(r.text) == after and len(standin.requests()) == n_requests


def test_a_resumed_stream_follows_a_turn_still_running_elsewhere(user, standin, server_url, second_url):
    standin.script([{"text": " ".join(f"w{i}" for i in range(30)), "delay_ms": 60}])
    sid = user.new_session()
    turn = TurnInThread(user, second_url, sid, "go")
    # from the first event, on the other instance, while the turn is running
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as c:
        with c.stream("GET", f"/sessions/{sid}/turns/{turn.run_id}/events") as r:
            followed = read_events(r)
    assert followed == turn.join() and followed[-1]["event"] == "TurnCompleted"


def test_stop_through_the_other_instance_cancels_the_turn_within_seconds(user, standin, db_conn, server_url,
                                                                          second_url):
    answer = " ".join(f"part{i}" for i in range(300))
    standin.script([{"text": answer, "delay_ms": 100}])
    sid = user.new_session()
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as instance1:
        with instance1.stream("POST", f"/sessions/{sid}/turns", json={"message": "a long story"}) as r:
            run_id, lines = r.headers["x-run-id"], r.iter_lines()
            events = read_events(lines, stop_after=lambda ev: sum(e["event"] == "RunContent" for e in ev) == 3)
            n_requests = len(standin.requests())
            asked = time.monotonic()
            stop = httpx.post(f"{second_url}/sessions/{sid}/turns/{run_id}/cancel", headers=user.headers)
            assert stop.status_code == 202 and stop.json() == {"run_id": run_id, "status": "cancelling"}
            events += read_events(lines)
            took = time.monotonic() - asked
    final = events[-1]
    assert final["event"] == "TurnCancelled" and took < 3, (final["event"], took)
    # a stopped run ends with agno's RunCancelled, then the turn's TurnCancelled: no RunCompleted,
    # which a client would take for a finished answer
    names = [e["event"] for e in events]
    assert names[-2:] == ["RunCancelled", "TurnCancelled"] and "RunCompleted" not in names, names[-4:]
    run = db_conn.execute("SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert run["status"] == "cancelled" and run["reserved_zar"] == 0
    # what was generated so far is stored: the text the user saw
    shown = content_of(events)
    assert shown and answer.startswith(shown) and assistant_text(db_conn, run_id) == shown
    # what the provider billed for the aborted stream is stored (output estimated, and marked so)
    assert final["data"]["usage"]["input_tokens"] > 0 and final["data"]["usage"]["output_tokens"] > 0
    assert final["data"]["usage"]["estimated"] is True and float(final["data"]["cost"]["usd"]) > 0
    row = db_conn.execute("SELECT * FROM chat_events WHERE run_id = %s AND role = 'assistant'", (run_id,)).fetchone()
    assert row["usage_estimated"] is True and row["cost_usd"] > 0 and run["cost_usd"] == row["cost_usd"]
    time.sleep(0.5)
    assert len(standin.requests()) == n_requests  # no further model call
    # stopping it again: it has finished
    again = httpx.post(f"{second_url}/sessions/{sid}/turns/{run_id}/cancel", headers=user.headers)
    assert again.status_code == 409 and again.json()["code"] == "turn-finished"
    assert User(server_url).client.post(f"/sessions/{sid}/turns/{run_id}/cancel").status_code == 404
    # the partial answer is history for the next turn: the user saw it
    standin.reset()
    _, next_turn = user.turn(sid, message="go on")
    assert next_turn[-1]["event"] == "TurnCompleted"
    sent = standin.requests()[-1]["body"]["messages"]
    assert any(m["role"] == "assistant" and shown.strip() in str(m["content"]) for m in sent)


def test_a_stop_reaches_a_turn_whose_model_is_silent(user, standin, db_conn, server_url, second_url):
    """agno only checks for a stop between chunks; a silent model is ended after the grace period."""
    standin.script([{"text": "first words then a long silence", "delay_ms": 3000}])
    sid = user.new_session()
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as c:
        with c.stream("POST", f"/sessions/{sid}/turns", json={"message": "think hard"}) as r:
            run_id, lines = r.headers["x-run-id"], r.iter_lines()
            events = read_events(lines, stop_after=lambda ev: any(e["event"] == "RunStarted" for e in ev))
            time.sleep(0.5)
            asked = time.monotonic()
            assert httpx.post(f"{second_url}/sessions/{sid}/turns/{run_id}/cancel",
                              headers=user.headers).status_code == 202
            events += read_events(lines)
            took = time.monotonic() - asked
    assert events[-1]["event"] == "TurnCancelled" and took < 3, took
    run = db_conn.execute("SELECT status, input_tokens FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert run["status"] == "cancelled" and run["input_tokens"] > 0  # the aborted call's input is billed


def test_a_silent_model_keeps_both_streams_alive_with_heartbeats(user, standin, server_url, second_url):
    """The default 15 s heartbeat, a model silent for 25 s: no gap over 15 s on the live stream or
    on a stream resumed on the other instance, and the turn completes."""
    standin.script([{"text": "done", "delay_ms": 25_000}])  # one chunk, after 25 s of silence
    sid = user.new_session()
    resumed: list[float] = []
    turn = TurnInThread(user, server_url, sid, "slowly")
    with httpx.Client(base_url=second_url, headers=user.headers, timeout=60) as c:
        with c.stream("GET", f"/sessions/{sid}/turns/{turn.run_id}/events") as r:
            resumed.append(time.monotonic())
            resumed_events = read_events(r, arrivals=resumed)
    live_events, live = turn.join(), turn.arrivals
    assert live_events[-1]["event"] == resumed_events[-1]["event"] == "TurnCompleted"
    for arrivals in (live, resumed):
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        assert max(gaps) < 16, max(gaps)  # 15 s and the poll's granularity
    assert max(b - a for a, b in zip(live, live[1:])) > 10  # the silence was real


def test_a_resume_one_event_before_the_end_gets_the_final_event_byte_for_byte_and_at_it_a_204(user, standin):
    """The client lacks only the final event: it gets it exactly as it was first sent; at the final
    event, a 204 (test_fuzz_defects holds the 204 for every id at or past it)."""
    sid = user.new_session()
    r, events = user.turn(sid, message="hello")
    run_id, final_id = r.headers["x-run-id"], int(events[-1]["id"])
    path = f"/sessions/{sid}/turns/{run_id}/events"
    one_before = user.client.get(path, headers={"Last-Event-ID": str(final_id - 1)})
    assert one_before.status_code == 200 and one_before.text == raw_frames(r.text)[-1]
    ended = user.client.get(path, headers={"Last-Event-ID": str(final_id)})
    assert ended.status_code == 204 and ended.headers["cache-control"] == "no-cache"


def test_finished_turns_events_are_pruned_after_the_retention_but_the_final_event_stays(user, standin, db_conn):
    from chatcore.store import turn_events
    from chatcore.turns.outcome import FINAL_EVENTS

    sid = user.new_session()
    r, events = user.turn(sid, message="hello")
    run_id = r.headers["x-run-id"]
    assert turn_events.prune_events(db_conn, 24, keep=FINAL_EVENTS.values()) == 0  # just finished: kept
    db_conn.execute("UPDATE runs SET finished_at = now() - interval '25 hours' WHERE id = %s", (run_id,))
    assert turn_events.prune_events(db_conn, 24, keep=FINAL_EVENTS.values()) == len(events) - 1
    replay = user.client.get(f"/sessions/{sid}/turns/{run_id}/events")
    assert replay.text == raw_frames(r.text)[-1]  # the final event as it was sent: same id, same bytes
    assert "replayed" not in sse.parse(replay.text)[0]["data"]
    assert user.client.get(f"/sessions/{sid}/turns/{run_id}/events",
                           headers={"Last-Event-ID": events[-1]["id"]}).status_code == 204
    assert assistant_text(db_conn, run_id) == content_of(events)  # the messages stay


def test_a_turn_that_stored_no_final_event_gets_one_rebuilt_once_and_replayed_the_same(user, standin, db_conn):
    """Its events stored but not its final one (the database was down as it ended): the first resume
    rebuilds the final event from the run and stores it after the last id it knows; every later
    replay sends it again, byte for byte, and a resume at it is a 204."""
    sid = user.new_session()
    r, events = user.turn(sid, message="hello")
    run_id = r.headers["x-run-id"]
    final_id = int(events[-1]["id"])
    db_conn.execute("DELETE FROM turn_events WHERE run_id = %s AND seq >= %s", (run_id, final_id - 1))
    db_conn.execute("UPDATE runs SET finished_at = now() - interval '1 minute' WHERE id = %s", (run_id,))
    path = f"/sessions/{sid}/turns/{run_id}/events"
    # this client had one event more than is stored (sent live, never written)
    first = user.client.get(path, headers={"Last-Event-ID": str(final_id - 1)})
    (rebuilt,) = sse.parse(first.text)
    assert rebuilt["event"] == "TurnCompleted" and rebuilt["id"] == str(final_id) and rebuilt["data"]["replayed"]
    assert rebuilt["data"]["cost"] == events[-1]["data"]["cost"]
    replay = user.client.get(path)
    assert raw_frames(replay.text)[-1] == first.text and len(raw_frames(replay.text)) == final_id - 1
    assert user.client.get(path, headers={"Last-Event-ID": str(final_id - 2)}).text == first.text
    assert user.client.get(path, headers={"Last-Event-ID": str(final_id)}).status_code == 204
    # one final event per turn: another one is never stored beside it
    finals = db_conn.execute("SELECT count(*) AS n FROM turn_events WHERE run_id = %s AND event LIKE 'Turn%%'",
                             (run_id,)).fetchone()
    assert finals["n"] == 1


def test_a_turn_whose_process_died_ends_resumed_streams_and_can_be_stopped(user, db_conn, settings_env):
    """A running run nobody writes to (its sandbox died): a follower ends it as abandoned once it is
    stale, and a stop closes it directly as cancelled."""
    from uuid6 import uuid7

    sid = user.new_session()
    run_id = uuid7()
    db_conn.execute("INSERT INTO runs (id, session_id, agent_name, status, started_at) "
                    "VALUES (%s, %s, 'assistant', 'running', now() - interval '20 minutes')", (run_id, sid))
    r = user.client.get(f"/sessions/{sid}/turns/{run_id}/events")
    (final,) = sse.parse(r.text)
    assert final["event"] == "TurnFailed" and final["data"]["error"]["code"] == "abandoned"
    assert final["data"]["error"]["retryable"] is True and final["id"] == "1"
    # stored once: the same event again, then nothing after it
    assert user.client.get(f"/sessions/{sid}/turns/{run_id}/events").text == r.text
    assert user.client.get(f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": "1"}).status_code == 204
    r = user.client.post(f"/sessions/{sid}/turns/{run_id}/cancel")
    assert r.status_code == 202
    assert db_conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()["status"] == "cancelled"


def test_events_written_while_the_database_blinks_leave_no_gap(user, standin, db_conn, server_url, monkeypatch,
                                                               settings_env, caplog):
    """Postgres unreachable for a while as the turn streams: the batches that fail stay queued and
    are written once it is back, so the stored stream equals the live one."""
    from chatcore import db
    from chatcore.config import get_settings
    from local.ports import free_port

    standin.script([{"text": " ".join(f"b{i}" for i in range(120)), "delay_ms": 60}])  # about 2.4 s
    sid = user.new_session()
    turn = TurnInThread(user, server_url, sid, "go")
    deadline = time.time() + 30
    while time.time() < deadline:  # the turn is streaming and has written a batch
        if db_conn.execute("SELECT count(*) AS n FROM turn_events WHERE run_id = %s", (turn.run_id,)).fetchone()["n"]:
            break
        time.sleep(0.05)
    real, dead = db.connect_params, free_port()
    settings_env.setenv("DB_POOL_TIMEOUT", "0.3")
    get_settings.cache_clear()
    monkeypatch.setattr(db, "connect_params", lambda: (f"postgresql://postgres@127.0.0.1:{dead}/x", db.CONNECT_KWARGS))
    db.close_pool()
    time.sleep(1.0)  # batches fail meanwhile
    monkeypatch.setattr(db, "connect_params", real)
    db.close_pool()
    live = turn.join()
    assert live[-1]["event"] == "TurnCompleted"
    assert any("kept for the next batch" in r.getMessage() for r in caplog.records)  # batches did fail
    stored = db_conn.execute("SELECT seq FROM turn_events WHERE run_id = %s ORDER BY seq", (turn.run_id,)).fetchall()
    assert [r["seq"] for r in stored] == list(range(1, len(live) + 1))
    replay = user.client.get(f"/sessions/{sid}/turns/{turn.run_id}/events")
    assert sse.parse(replay.text) == live
