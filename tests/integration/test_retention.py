"""The retention period (RETENTION_DAYS): the scheduled function deletes sessions inactive for longer,
photos, messages, runs, stored events and summary, while what they cost stays counted; a session
whose turn is running is skipped; off (0 or unset) nothing is deleted. The scheduled handler runs
as in Lambda: its own process, the sample EventBridge event, the real Postgres and S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest

from tests.support import costdata
from tests.support.images import LARGE_PNG, b64

HANDLER = costdata.ROOT / "functions" / "scheduled" / "handler.py"
SCHEDULED = costdata.ROOT / "events" / "scheduled-run.json"


def run_scheduled(database_url: str, retention_days: str | None, *, import_only: bool = False):
    """The rollup function's handler with the scheduled sample event, in a process of its own:
    (return code, the summary it returned, its log lines as JSON, stderr)."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(HANDLER.parent)!r})\n"
        "import handler\n"
        + ("" if import_only else
           "out = handler.handler(json.load(open(sys.argv[1])), None)\n"
           "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('agno', 'anthropic'))\n"
           "assert not bad, bad\n"
           "print(json.dumps({'returned': out}))\n")
    )
    env = {**os.environ, "DATABASE_URL": database_url, "DB_POOL_MAX": "1"}  # Lambda's pool
    env.pop("RETENTION_DAYS", None)
    if retention_days is not None:
        env["RETENTION_DAYS"] = retention_days
    r = subprocess.run([sys.executable, "-c", code, str(SCHEDULED)], cwd=costdata.ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    lines = []
    for line in r.stdout.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    returned = next((line["returned"] for line in lines if "returned" in line), None)
    return r.returncode, returned, [line for line in lines if "message" in line], r.stderr


@pytest.fixture()
def s3(stack):
    client = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    bucket = stack.env["MEDIA_BUCKET"]
    return lambda sid: client.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("KeyCount", 0)


def age(db_conn, sid: str, days: float) -> None:
    """The session was last active ``days`` days ago."""
    db_conn.execute("UPDATE sessions SET updated_at = now() - make_interval(secs => %s) WHERE id = %s",
                    (days * 86400, sid))


def rows_of(db_conn, sid: str, run_ids: list) -> dict[str, int]:
    count = lambda sql, arg: db_conn.execute(sql, (arg,)).fetchone()["n"]  # noqa: E731
    return {
        "sessions": count("SELECT count(*) AS n FROM sessions WHERE id = %s", sid),
        "chat_events": count("SELECT count(*) AS n FROM chat_events WHERE session_id = %s", sid),
        "runs": count("SELECT count(*) AS n FROM runs WHERE session_id = %s", sid),
        "turn_events": count("SELECT count(*) AS n FROM turn_events WHERE run_id = ANY(%s)", run_ids),
        "session_summaries": count("SELECT count(*) AS n FROM session_summaries WHERE session_id = %s", sid),
    }


def inactive_count(db_conn, days: int) -> int:
    return db_conn.execute("SELECT count(*) AS n FROM sessions WHERE updated_at < now() - make_interval(days => %s)",
                           (days,)).fetchone()["n"]


def two_sessions_with_a_photo_and_a_sum(user, db_conn) -> tuple[str, str, list]:
    """Two sessions of a photo turn and a sum each; the first has a summary too (a row of each kind
    to delete). Returns them, and the first one's runs."""
    old, recent = user.new_session(), user.new_session()
    for sid in (old, recent):
        r, events = user.turn(sid, message="my photo", images=[{"data": b64(LARGE_PNG)}])
        assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", r.text[-500:]
        r, _ = user.turn(sid, message="What is 6 * 7?")
        assert r.status_code == 200
    run_ids = [r["id"] for r in db_conn.execute("SELECT id FROM runs WHERE session_id = %s", (old,))]
    last_message = db_conn.execute("SELECT id FROM chat_events WHERE session_id = %s ORDER BY id DESC LIMIT 1",
                                   (old,)).fetchone()["id"]
    db_conn.execute("INSERT INTO session_summaries (session_id, summary, through_message_id, turns, run_id) "
                    "VALUES (%s, 'The user shared a photo and asked a sum.', %s, 1, %s)",
                    (old, last_message, run_ids[0]))
    return old, recent, run_ids


def a_turn_running_in_another_users_session(other_user, standin, db_conn) -> tuple[str, threading.Thread, dict]:
    """A slow model's turn, running in a session of its own: the session, the turn's thread and its run."""
    busy = other_user.new_session()
    standin.script({"text": "slow " * 600, "delay_ms": 100})
    turn = threading.Thread(target=other_user.turn, args=(busy,), kwargs={"message": "take your time"})
    turn.start()
    deadline = time.monotonic() + 30
    while (running := db_conn.execute("SELECT id FROM runs WHERE session_id = %s AND status = 'running'",
                                      (busy,)).fetchone()) is None:
        assert time.monotonic() < deadline, "the slow turn never started"
        time.sleep(0.05)
    return busy, turn, running


def assert_the_scheduled_run_deletes_every_inactive_session_but_the_busy_one(stack, db_conn, expected: int,
                                                                             running: dict) -> None:
    code, summary, logs, stderr = run_scheduled(stack.env["DATABASE_URL"], "30")
    assert code == 0, stderr[-3000:]
    assert summary["retention"] == {"days": 30, "sessions_deleted": expected, "sessions_skipped": 1,
                                    "errors": 0, "unfinished": False}, summary
    # visible in the rollup's log, beside the rollup's own figures
    (done,) = [line for line in logs if line["message"] == "scheduled run done"]
    assert done["retention"] == summary["retention"] and done["mode"] == "incremental"
    status = db_conn.execute("SELECT status FROM runs WHERE id = %s", (running["id"],)).fetchone()["status"]
    assert status == "running"


def assert_what_the_deleted_session_cost_stays_counted(user, db_conn, old: str, usage: dict) -> None:
    """In GET /usage, and in the rollup of the day."""
    from chatcore.money.rollup import rollup

    assert user.client.get("/usage").json() == usage
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    today = datetime.now(UTC).date()
    rollup(db_conn, today - timedelta(days=1), today)
    rolled = db_conn.execute("SELECT sum(cost_in_rands) AS zar, sum(turns) AS turns FROM daily_costs "
                             "WHERE user_id = %s", (uid,)).fetchone()
    assert rolled["zar"] == Decimal(usage["totals"]["cost"]["zar"]) and rolled["turns"] == 4
    kept = db_conn.execute("SELECT sum(cost_in_rands) AS zar FROM deleted_session_usage WHERE session_id = %s",
                           (old,)).fetchone()["zar"]
    assert 0 < kept < rolled["zar"]


def test_retention_deletes_inactive_sessions_keeps_their_cost_and_skips_running_turns(
        stack, user, other_user, standin, db_conn, s3):
    old, recent, run_ids = two_sessions_with_a_photo_and_a_sum(user, db_conn)
    before = rows_of(db_conn, old, run_ids)
    assert all(before.values()) and before["turn_events"] > 4, before  # a row of each kind to delete
    assert s3(old) == 1 and s3(recent) == 1
    recent_messages = [m["id"] for m in user.client.get(f"/sessions/{recent}/messages").json()["items"]]
    usage = user.client.get("/usage").json()
    assert Decimal(usage["totals"]["cost"]["zar"]) > 0 and usage["totals"]["turns"] == 4

    # another user's session with a turn running now (a slow model), last active long ago before it
    busy, turn, running = a_turn_running_in_another_users_session(other_user, standin, db_conn)
    age(db_conn, old, 31)
    age(db_conn, recent, 29)
    age(db_conn, busy, 31)
    expected = inactive_count(db_conn, 30) - 1  # every inactive session but the busy one (any user's)
    try:
        assert_the_scheduled_run_deletes_every_inactive_session_but_the_busy_one(stack, db_conn, expected, running)
    finally:
        assert other_user.client.post(f"/sessions/{busy}/turns/{running['id']}/cancel").status_code in (202, 409)
        turn.join(timeout=60)

    # the inactive session is gone: rows, stored events, summary, photos; its URL and id answer 404
    assert rows_of(db_conn, old, run_ids) == dict.fromkeys(before, 0)
    assert s3(old) == 0
    assert user.client.get(f"/sessions/{old}").status_code == 404
    # the one active 29 days ago and the one whose turn was running stay, photos and all
    assert user.client.get(f"/sessions/{recent}").status_code == 200 and s3(recent) == 1
    assert [m["id"] for m in user.client.get(f"/sessions/{recent}/messages").json()["items"]] == recent_messages
    assert other_user.client.get(f"/sessions/{busy}").status_code == 200
    assert_what_the_deleted_session_cost_stays_counted(user, db_conn, old, usage)

    # the next run finds nothing more to delete (the recent session is not yet inactive)
    code, again, _, stderr = run_scheduled(stack.env["DATABASE_URL"], "30")
    assert code == 0, stderr[-3000:]
    assert again["retention"]["sessions_deleted"] == 0 and again["retention"]["errors"] == 0
    assert user.client.get(f"/sessions/{recent}").status_code == 200


@pytest.mark.parametrize("setting", [None, "0"], ids=["unset", "zero"])
def test_without_a_retention_period_nothing_is_deleted(stack, user, standin, db_conn, s3, setting):
    sid = user.new_session()
    r, _ = user.turn(sid, message="keep this", images=[{"data": b64(LARGE_PNG)}])
    assert r.status_code == 200
    age(db_conn, sid, 3650)
    try:
        code, summary, logs, stderr = run_scheduled(stack.env["DATABASE_URL"], setting)
        assert code == 0, stderr[-3000:]
        assert summary["retention"] == {"days": 0, "sessions_deleted": 0, "sessions_skipped": 0, "errors": 0,
                                        "unfinished": False}
        assert user.client.get(f"/sessions/{sid}").status_code == 200 and s3(sid) == 1
    finally:
        assert user.client.delete(f"/sessions/{sid}").status_code == 204  # out of the other tests' way


@pytest.mark.parametrize("setting, message", [
    ("-1", "RETENTION_DAYS must be a whole number from 0 to 36500, got '-1'"),
    ("thirty", "RETENTION_DAYS must be a whole number from 0 to 36500, got 'thirty'"),
])
def test_a_bad_retention_period_fails_the_cold_start(stack, setting, message):
    code, _, _, stderr = run_scheduled(stack.env["DATABASE_URL"], setting, import_only=True)
    assert code != 0 and message in stderr, stderr[-2000:]


def test_retention_goes_page_by_page_within_its_time_budget(stack, db_conn, s3):
    """Many inactive sessions: a run with no time left deletes nothing and says so; then they go in
    pages of two."""
    from chatcore.account import retention

    uid = costdata.add_user(db_conn)
    costdata.seed_catalog(db_conn)
    long_ago = datetime.now(UTC) - timedelta(days=45)
    sessions = [costdata.add_session(db_conn, uid, agent="assistant", at=long_ago + timedelta(minutes=i))
                for i in range(5)]
    inactive = inactive_count(db_conn, 40)
    assert inactive >= 5
    out_of_time = retention.apply_retention(40, budget_seconds=0)
    assert out_of_time == {"days": 40, "sessions_deleted": 0, "sessions_skipped": 0, "errors": 0, "unfinished": True}
    done = retention.apply_retention(40, page_size=2)
    assert done == {"days": 40, "sessions_deleted": inactive, "sessions_skipped": 0, "errors": 0, "unfinished": False}
    assert not db_conn.execute("SELECT 1 FROM sessions WHERE id = ANY(%s)", (sessions,)).fetchall()
    assert retention.apply_retention(0) == {"days": 0, "sessions_deleted": 0, "sessions_skipped": 0, "errors": 0,
                                            "unfinished": False}
    with pytest.raises(RuntimeError, match="RETENTION_DAYS"):
        retention.apply_retention(-3)
