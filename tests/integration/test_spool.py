"""The durable spool (issue 29): a turn that finishes while the database stays unreachable is spooled
to SQS (moto) as its rows, written once the database is back, in order per session, exactly once; a
new turn of its session is not refused meanwhile; the client is told (``stored: "pending"``)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import pytest

from chatcore import db
from tests.support.users import User


def _new_queue(stack) -> str:
    from local.stack import create_spool_queue

    return create_spool_queue({**stack.env, "AWS_ENDPOINT_URL_SQS": stack.env["AWS_ENDPOINT_URL_SQS"]},
                              f"spool-test-{uuid.uuid4().hex[:8]}")


def _sqs(stack):
    import boto3

    return boto3.client("sqs", endpoint_url=stack.env["AWS_ENDPOINT_URL_SQS"], region_name=stack.env["AWS_REGION"])


def _queued(stack, url: str) -> int:
    attributes = _sqs(stack).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def _through(url: str, port: int) -> str:
    """``url`` (a Postgres URL) with its port replaced: the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def _answers(user: User, session_id: str) -> list[str]:
    items = user.client.get(f"/sessions/{session_id}/messages", params={"limit": 100}).json()["items"]
    return [m["text"] for m in items if m["role"] == "assistant" and m.get("text")]


def test_turns_finished_during_a_90_s_outage_on_killed_instances_are_stored_once_and_block_nothing(
        stack, user, standin, db_conn, tmp_path):
    """The issue's must-show: Postgres down 90 s; five turns on two instances finish in that window;
    both instances are SIGKILLed before it returns; once it is back and an instance is started again,
    every answer and cost is stored exactly once within 2 minutes, and a new turn of one of those
    sessions right after Postgres returns is not refused with 409."""
    from chatcore.money import rollup
    from tests.support.serve_process import instance_process
    from tests.support.streams import TurnInThread
    from tests.support.tcp_proxy import OutageProxy

    database = urlsplit(stack.env["DATABASE_URL"])
    proxy = OutageProxy(database.hostname, database.port)
    queue_url = _new_queue(stack)
    env = {**os.environ, "DATABASE_URL": _through(stack.env["DATABASE_URL"], proxy.port),
           "SPOOL_QUEUE_URL": queue_url, "DB_POOL_TIMEOUT": "2"}
    instances = [instance_process(env, tmp_path / f"instance-{i}.log") for i in range(2)]
    try:
        started = [next(instance) for instance in instances]
        urls, processes = [url for url, _ in started], [proc for _, proc in started]
        sessions = [user.new_session() for _ in range(5)]
        # each answer trickles for about eight seconds: the database goes while they are being written
        standin.script([{"text": f"answer number {i} " + "and some more words " * 25, "delay_ms": 250}
                        for i in range(5)])
        on = [User(urls[i % 2], sub=user.sub) for i in range(5)]
        turns = [TurnInThread(on[i], urls[i % 2], sid, f"question {i}") for i, sid in enumerate(sessions)]
        assert all(turn.thread.is_alive() for turn in turns)  # all five still answering
        proxy.down()
        went_down = time.monotonic()
        finals = []
        for turn in turns:
            turn.thread.join(80)
            assert not turn.thread.is_alive(), "a turn did not end while the database was down"
            finals.append(turn.events[-1])
        for final in finals:
            assert final["event"] == "TurnCompleted" and final["data"]["stored"] == "pending", final
            assert Decimal(final["data"]["cost"]["usd"]) > 0
        assert time.monotonic() - went_down < 90  # they all finished within the outage
        assert _queued(stack, queue_url) == 5
        for proc in processes:  # recycled sandboxes: nothing of their memory survives
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        for instance in instances:
            assert next(instance, None) is None
        time.sleep(max(0.0, 90 - (time.monotonic() - went_down)))
        proxy.up()
        back = time.monotonic()

        # an instance again: a new turn of a spooled turn's session at once, not 409
        restarted = instance_process(env, tmp_path / "restarted.log")
        url, _ = next(restarted)
        again = User(url, sub=user.sub)
        r, events = again.turn(sessions[0], message="and now?")
        assert r.status_code == 200, r.text
        assert events[-1]["event"] == "TurnCompleted" and "stored" not in events[-1]["data"]

        # within 2 minutes every answer is in the history and every cost in /usage, each exactly once
        runs = [f["data"]["run_id"] for f in finals]
        while time.monotonic() - back < 120:
            stored = db_conn.execute("SELECT count(*) AS n FROM runs WHERE id = ANY(%s) AND status = 'completed'",
                                     ([uuid.UUID(r) for r in runs],)).fetchone()["n"]
            if stored == 5 and _queued(stack, queue_url) == 0:
                break
            time.sleep(1)
        assert stored == 5, f"{stored} of the 5 spooled turns stored within 2 minutes"
        assert time.monotonic() - back < 120
        for turn, sid in zip(turns, sessions):
            streamed = "".join(e["data"]["content"] for e in turn.events if e["event"] == "RunContent")
            assert _answers(user, sid).count(streamed) == 1, (sid, streamed)
        for final in finals:
            rows = db_conn.execute("SELECT cost_usd, cost_in_rands FROM chat_events WHERE run_id = %s "
                                   "AND model_id IS NOT NULL", (final["data"]["run_id"],)).fetchall()
            assert len(rows) == 1 and rows[0]["cost_usd"] == Decimal(final["data"]["cost"]["usd"])
            run = db_conn.execute("SELECT cost_usd, reserved_zar FROM runs WHERE id = %s",
                                  (final["data"]["run_id"],)).fetchone()
            assert run["cost_usd"] == Decimal(final["data"]["cost"]["usd"]) and run["reserved_zar"] == 0
        billed = db_conn.execute(
            "SELECT sum(ce.cost_in_rands) AS zar, count(DISTINCT ce.run_id) AS turns FROM chat_events ce "
            "JOIN sessions s ON s.id = ce.session_id JOIN users u ON u.id = s.user_id WHERE u.sub = %s",
            (user.sub,)).fetchone()
        assert billed["turns"] == 6
        totals = user.client.get("/usage").json()["totals"]
        assert Decimal(totals["cost"]["zar"]) == billed["zar"] and totals["turns"] == 6
        expected = sum(Decimal(f["data"]["cost"]["zar"]) for f in finals) + Decimal(events[-1]["data"]["cost"]["zar"])
        assert billed["zar"] == expected
        rollup.incremental(db_conn)
        rolled = db_conn.execute("SELECT sum(d.cost_in_rands) AS zar, sum(d.turns) AS turns FROM daily_costs d "
                                 "JOIN users u ON u.id = d.user_id WHERE u.sub = %s", (user.sub,)).fetchone()
        assert rolled["zar"] == expected and rolled["turns"] == 6
        # the events route replays a spooled turn's final event, as stored (no "pending")
        replay = sse_events(user, sessions[1], runs[1])
        assert replay[-1]["event"] == "TurnCompleted" and "stored" not in replay[-1]["data"]
        assert replay[-1]["data"]["cost"] == finals[1]["data"]["cost"]
        # nothing of the spool is left: no message, no record in S3
        assert _queued(stack, queue_url) == 0
        s3 = _s3(stack)
        for sid in sessions:
            listed = s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"], Prefix=f"media/{sid}-spool-")
            assert listed.get("KeyCount") == 0
    finally:
        for instance in [*instances, *([restarted] if "restarted" in locals() else [])]:
            next(instance, None)  # stopped (a killed one is already done)
        proxy.close()


def sse_events(user: User, session_id: str, run_id: str) -> list[dict]:
    from chatcore.wire import sse

    r = user.client.get(f"/sessions/{session_id}/turns/{run_id}/events")
    assert r.status_code == 200, r.text
    return sse.parse(r.text)


def _s3(stack):
    import boto3

    return boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name=stack.env["AWS_REGION"])


@pytest.fixture()
def own_queue(stack, monkeypatch):
    """This process spools to a queue of the test's own."""
    from chatcore.config import get_settings

    url = _new_queue(stack)
    monkeypatch.setenv("SPOOL_QUEUE_URL", url)
    get_settings.cache_clear()
    yield url
    monkeypatch.undo()
    get_settings.cache_clear()


def _database_gone(monkeypatch):
    """The process's database unreachable (its pool pointed at a closed port); returns the way back."""
    from chatcore.config import get_settings
    from local.ports import free_port

    real, dead = db.connect_params, free_port()
    monkeypatch.setattr(db, "connect_params", lambda: (f"postgresql://postgres@127.0.0.1:{dead}/x", db.CONNECT_KWARGS))
    monkeypatch.setenv("DB_POOL_TIMEOUT", "1")
    get_settings.cache_clear()
    db.close_pool()

    def back() -> None:
        monkeypatch.setattr(db, "connect_params", real)
        monkeypatch.delenv("DB_POOL_TIMEOUT")
        get_settings.cache_clear()
        db.close_pool()

    return back


def _turn_while_the_database_goes(user: User, sid: str, monkeypatch, message: str = "hello"):
    """A turn whose database goes while the model answers: its events, and the way back."""
    from tests.support.streams import TurnInThread

    turn = TurnInThread(user, str(user.client.base_url), sid, message)  # begun: its response has started
    time.sleep(0.3)
    back = _database_gone(monkeypatch)
    return turn.join(), back


def test_a_turn_too_large_for_a_message_is_spooled_through_s3_and_the_consumer_writes_it(
        user, standin, monkeypatch, db_conn, own_queue, stack):
    from chatcore.spool.consumer import PollingConsumer
    from chatcore.turns import finish

    monkeypatch.setattr(finish, "STORE_RETRY_DELAYS", (0.1,))
    monkeypatch.setattr(finish, "_pending", [])
    sid = user.new_session()
    # ~320 KB in a hundred chunks (a "word" of 1,000 characters): its record is over SQS's 256 KB
    long_answer = " ".join(f"{i:04d}" + "x" * 996 for i in range(320))
    standin.script([{"text": "begin " + long_answer, "delay_ms": 20}])
    events, back = _turn_while_the_database_goes(user, sid, monkeypatch)
    final = events[-1]
    assert final["event"] == "TurnCompleted" and final["data"]["stored"] == "pending", final
    [message] = _sqs(stack).receive_message(QueueUrl=own_queue, VisibilityTimeout=0)["Messages"]
    body = json.loads(message["Body"])
    assert body["record"] is None and body["key"] == f"media/{sid}-spool-{final['data']['run_id']}.json"
    assert len(_s3(stack).get_object(Bucket=stack.env["MEDIA_BUCKET"], Key=body["key"])["Body"].read()) > 256 * 1024
    finish._pending.clear()  # this process's cache gone (its sandbox recycled): only the queue has it
    consumer = PollingConsumer(retry_seconds=1)
    assert consumer.poll_once(own_queue) == 0  # the database is still down: the message comes back
    back()
    time.sleep(1.2)
    assert consumer.poll_once(own_queue) == 1
    assert _queued(stack, own_queue) == 0
    answers = _answers(user, sid)
    assert answers == ["begin " + long_answer]
    run = db_conn.execute("SELECT status, cost_usd FROM runs WHERE id = %s", (final["data"]["run_id"],)).fetchone()
    assert run["status"] == "completed" and run["cost_usd"] == Decimal(final["data"]["cost"]["usd"])
    assert _s3(stack).list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"], Prefix=body["key"]).get("KeyCount") == 0
    # the message once more (SQS delivers at least once): nothing is written twice
    from chatcore.spool import consumer as consumers

    assert consumers.write_in_order([("again", message["Body"])]) == []
    assert len(_answers(user, sid)) == 1


def test_spooled_turns_of_a_session_are_written_in_order_and_a_failing_one_holds_back_the_rest(
        user, standin, monkeypatch, db_conn, own_queue, stack):
    from chatcore.spool import consumer as consumers
    from chatcore.turns import finish

    monkeypatch.setattr(finish, "STORE_RETRY_DELAYS", (0.1,))
    monkeypatch.setattr(finish, "_pending", [])
    sid = user.new_session()
    standin.script([{"text": "the first answer, word by word " * 3, "delay_ms": 150}])
    events, back = _turn_while_the_database_goes(user, sid, monkeypatch)
    assert events[-1]["data"]["stored"] == "pending"
    [message] = _sqs(stack).receive_message(QueueUrl=own_queue, VisibilityTimeout=0)["Messages"]
    # the event of an SQS trigger: the spooled turn, then another message after it
    event = {"Records": [{"messageId": "m1", "body": message["Body"]}, {"messageId": "m2", "body": message["Body"]}]}
    assert consumers.handle_event(event) == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    back()
    assert consumers.handle_event(event) == {"batchItemFailures": []}
    assert _answers(user, sid) == ["the first answer, word by word " * 3]


def test_without_a_queue_a_turn_that_cannot_be_stored_is_kept_by_the_process(user, standin, monkeypatch, db_conn):
    from chatcore.config import get_settings
    from chatcore.turns import finish

    monkeypatch.delenv("SPOOL_QUEUE_URL", raising=False)
    get_settings.cache_clear()
    monkeypatch.setattr(finish, "STORE_RETRY_DELAYS", (0.1,))
    monkeypatch.setattr(finish, "_pending", [])
    sid = user.new_session()
    standin.script([{"text": "a slow answer, word by word " * 3, "delay_ms": 200}])
    events, back = _turn_while_the_database_goes(user, sid, monkeypatch)
    final = events[-1]
    assert final["event"] == "TurnFailed" and final["data"]["error"]["code"] == "storage-error", final
    assert len(finish._pending) == 1  # what the provider billed is kept in the process
    back()
    _, after = user.turn(sid, message="and now?")
    assert after[-1]["event"] == "TurnCompleted" and finish._pending == []
    run = db_conn.execute("SELECT status, cost_usd FROM runs WHERE id = %s", (final["data"]["run_id"],)).fetchone()
    assert run["status"] == "completed" and run["cost_usd"] > 0  # written, never replaced by zeros
    get_settings.cache_clear()


def test_the_spool_record_keeps_ids_amounts_and_times_as_they_were():
    from datetime import date, datetime, timezone

    from chatcore.spool import records

    finished = {"run_id": uuid.uuid4(), "cost": Decimal("0.0001234500"), "at": datetime.now(timezone.utc),
                "day": date(2026, 12, 7), "parts": {"content": "hi", "n": [1, 2.5, None]}}
    assert records.decode(records.encode(finished)) == finished
    with pytest.raises(TypeError):
        records.encode({"x": object()})


def test_a_new_turn_on_any_instance_writes_the_sessions_spooled_turn_first(user, standin, monkeypatch, db_conn,
                                                                          own_queue, stack):
    from chatcore.turns import finish

    monkeypatch.setattr(finish, "STORE_RETRY_DELAYS", (0.1,))
    monkeypatch.setattr(finish, "_pending", [])
    sid = user.new_session()
    standin.script([{"text": "spooled answer, word by word " * 3, "delay_ms": 150}])
    events, back = _turn_while_the_database_goes(user, sid, monkeypatch)
    assert events[-1]["data"]["stored"] == "pending"
    back()
    finish._pending.clear()  # as on another instance: only the spool has the turn
    r, after = user.turn(sid, message="next")
    assert r.status_code == 200 and after[-1]["event"] == "TurnCompleted", r.text
    assert _answers(user, sid)[0] == "spooled answer, word by word " * 3
    # the consumer finds it stored and writes nothing twice
    from chatcore.spool import consumer as consumers

    [message] = _sqs(stack).receive_message(QueueUrl=own_queue)["Messages"]
    assert consumers.write_message(message["Body"]) == "already"
    assert len(_answers(user, sid)) == 2
