"""The daily cost rollup: a generated month of data in a fresh database, checked against direct sums
over the messages; idempotence; late rows; the scheduled Lambda handler with the sample events, and
its housekeeping steps (one failing does not stop the others, and fails the run)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from uuid6 import uuid7

from chatcore.money import rollup
from tests.support import costdata, databases
from tests.support.costdata import HAIKU, OLD_SONNET, SONNET, Call, TurnSpec

EVENTS = costdata.ROOT / "events"
HANDLER = costdata.ROOT / "functions" / "scheduled" / "handler.py"
CENT = Decimal("0.01")
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
FIGURES = (*TOKENS, "cost_usd", "cost_in_rands")

DIRECT_SUMS = f"""
SELECT (ce.created_at AT TIME ZONE 'UTC')::date AS day, s.user_id, coalesce(t.name, a.name) AS name, ce.model_id,
       {", ".join(f"sum(ce.{f}) AS {f}" for f in FIGURES)}
FROM chat_events ce JOIN sessions s ON s.id = ce.session_id
LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN teams t ON t.id = s.team_id
WHERE ce.model_id IS NOT NULL
GROUP BY 1, 2, 3, 4
"""

ROLLUP_SUMS = f"""
SELECT day, user_id, name, model_id, {", ".join(f"sum({f}) AS {f}" for f in FIGURES)}
FROM daily_costs GROUP BY 1, 2, 3, 4
HAVING {" OR ".join(f"sum({f}) <> 0" for f in FIGURES)}
"""


@pytest.fixture()
def fresh(stack):
    with databases.fresh(stack, "rollup") as (url, conn):
        yield url, conn, costdata.seed_catalog(conn)


def previous_month() -> tuple[date, int]:
    first_this = datetime.now(UTC).date().replace(day=1)
    last_prev = first_this - timedelta(days=1)
    return last_prev.replace(day=1), last_prev.day


def snapshot(conn) -> list[dict]:
    return conn.execute("SELECT * FROM daily_costs ORDER BY day, user_id, kind, name, model_id").fetchall()


def assert_rollup_equals_direct_sums(conn, turns: list[tuple[TurnSpec, object]]) -> None:
    direct = {(r["day"], r["user_id"], r["name"], r["model_id"]): r for r in conn.execute(DIRECT_SUMS)}
    rolled = {(r["day"], r["user_id"], r["name"], r["model_id"]): r for r in conn.execute(ROLLUP_SUMS)}
    assert direct, "no data"
    assert set(rolled) == set(direct)
    for key, row in direct.items():
        for f in FIGURES:
            assert rolled[key][f] == row[f], (key, f)  # exact, so to the cent too
    # totals per user, in rands and dollars, to the cent and exactly
    for currency in ("cost_in_rands", "cost_usd"):
        per_user = conn.execute(
            f"SELECT s.user_id, sum(ce.{currency}) AS total FROM chat_events ce JOIN sessions s ON s.id = ce.session_id "
            "GROUP BY 1").fetchall()
        rolled_user = {r["user_id"]: r["total"] for r in conn.execute(
            f"SELECT user_id, sum({currency}) AS total FROM daily_costs GROUP BY 1")}
        for r in per_user:
            assert rolled_user[r["user_id"]] == r["total"]
            assert rolled_user[r["user_id"]].quantize(CENT) == r["total"].quantize(CENT)
    # turns: top-level runs by the day they started, failed ones apart; member runs never count
    sessions = {r["id"]: r for r in conn.execute(
        "SELECT s.id, s.user_id, coalesce(t.name, a.name) AS name FROM sessions s "
        "LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN teams t ON t.id = s.team_id")}
    expected_turns: Counter = Counter()
    expected_failed: Counter = Counter()
    for spec, _ in turns:
        s = sessions[spec.session_id]
        key = (spec.started_at.astimezone(UTC).date(), s["user_id"], s["name"])
        expected_turns[key] += 1
        expected_failed[key] += spec.status == "failed"
    got = conn.execute("SELECT day, user_id, name, sum(turns) AS turns, sum(failed_turns) AS failed "
                       "FROM daily_costs GROUP BY 1, 2, 3 HAVING sum(turns) > 0").fetchall()
    assert {(r["day"], r["user_id"], r["name"]): r["turns"] for r in got} == dict(expected_turns)
    assert {(r["day"], r["user_id"], r["name"]): r["failed"] for r in got
            if r["failed"]} == {k: v for k, v in expected_failed.items() if v}
    runs = conn.execute("SELECT count(*) AS n, count(*) FILTER (WHERE status = 'failed') AS failed FROM runs "
                        "WHERE parent_run_id IS NULL").fetchone()
    totals = conn.execute("SELECT sum(turns) AS n, sum(failed_turns) AS failed FROM daily_costs").fetchone()
    assert (totals["n"], totals["failed"]) == (runs["n"], runs["failed"])


def a_month_with_a_stuck_turn(conn, price_ids, first_day: date, days: int):
    """A generated month, and a turn left running on day 10 (its sandbox died), to be closed as
    abandoned much later; returns the month and the stuck turn's spec."""
    month = costdata.generate_month(conn, price_ids, first_day, days=days)
    stuck_session = costdata.add_session(conn, month.users[0], agent="assistant",
                                         at=datetime.combine(first_day, datetime.min.time(), tzinfo=UTC))
    stuck_start = datetime.combine(first_day + timedelta(days=9), datetime.min.time(), tzinfo=UTC) + timedelta(hours=7)
    stuck = TurnSpec(stuck_session, stuck_start, [], status="running")
    month.turns.append((stuck, costdata.insert_turn(conn, price_ids, stuck)))
    statuses = Counter(spec.status for spec, _ in month.turns)
    assert statuses["failed"] > 5 and statuses["completed"] > 100  # the data is varied enough to mean something
    models = {r["model_id"] for r in conn.execute("SELECT DISTINCT model_id FROM chat_events WHERE model_id IS NOT NULL")}
    assert models == {SONNET, HAIKU, OLD_SONNET}
    return month, stuck


def assert_a_teams_rows_belong_to_the_team(conn) -> None:
    """Under the member's model; members never appear alone."""
    team_models = {r["model_id"] for r in conn.execute("SELECT DISTINCT model_id FROM daily_costs WHERE kind = 'team' "
                                                       "AND name = 'planner' AND cost_usd > 0")}
    assert team_models == {SONNET, HAIKU}
    assert not conn.execute("SELECT 1 FROM daily_costs WHERE name IN ('calculator', 'converter')").fetchall()
    assert {r["kind"] for r in conn.execute("SELECT DISTINCT kind FROM daily_costs")} == {"agent", "team"}


def assert_rolling_up_again_changes_nothing(conn, first_day: date, last_day: date) -> tuple[list[dict], date]:
    """Incrementally or over the whole range; returns the rollup's rows, and today."""
    before = snapshot(conn)
    again = rollup.incremental(conn)
    today = datetime.now(UTC).date()
    assert again.days == [today - timedelta(days=1), today]  # nothing was created since the watermark
    assert snapshot(conn) == before
    rollup.rollup(conn, first_day, last_day)
    assert snapshot(conn) == before
    return before, today


def late_rows(conn, price_ids, month, first_day: date, stuck: TurnSpec) -> list[date]:
    """Back-dated turns inserted now (ids of now) on days already rolled up, a late row of an old turn,
    and the stuck turn closed as abandoned now; returns the days they land on."""
    late_days = [first_day + timedelta(days=2), first_day + timedelta(days=15), month.last_day]
    team_session = conn.execute("SELECT id FROM sessions WHERE user_id = %s AND team_id IS NOT NULL",
                                (month.users[1],)).fetchone()["id"]
    agent_session = conn.execute("SELECT id FROM sessions WHERE user_id = %s AND agent_id IS NOT NULL ORDER BY id "
                                 "LIMIT 1", (month.users[2],)).fetchone()["id"]
    late = [
        TurnSpec(agent_session, datetime.combine(late_days[0], datetime.min.time(), tzinfo=UTC) + timedelta(hours=5),
                 [Call(OLD_SONNET, costdata.TokenUsage(1000, 200, 30000, 5000))], fresh_ids=True),
        TurnSpec(team_session, datetime.combine(late_days[1], datetime.min.time(), tzinfo=UTC) + timedelta(hours=9),
                 [Call(SONNET, costdata.TokenUsage(10, 20, 0, 0))], [Call(HAIKU, costdata.TokenUsage(7, 8, 9, 10))],
                 "converter", agent_name="planner", fresh_ids=True),
        TurnSpec(agent_session, datetime.combine(late_days[2], datetime.min.time(), tzinfo=UTC) + timedelta(hours=23),
                 [Call(SONNET, costdata.TokenUsage(5, 5, 5, 5))], status="failed", fresh_ids=True),
    ]
    for spec in late:
        month.turns.append((spec, costdata.insert_turn(conn, price_ids, spec)))
    # and a late row of an old turn (the run itself is old): only the row's own id is new
    day20 = first_day + timedelta(days=19)
    old_spec, old_turn = next((s, t) for s, t in month.turns
                              if s.stored_at.date() == day20 and s.calls and not s.fresh_ids)
    conn.execute(
        "INSERT INTO chat_events (id, session_id, run_id, role, agent_name, model_id, message_parts, output_tokens, "
        "cost_usd, cost_in_rands, created_at) VALUES (%s, %s, %s, 'assistant', %s, %s, '{}', 321, 0.0048150000, "
        "0.0866700000, %s)",
        (uuid7(), old_spec.session_id, old_turn.run_id, old_spec.agent_name, old_spec.calls[0].model_id,
         old_spec.stored_at))
    late_days.append(day20)
    conn.execute("UPDATE runs SET status = 'failed', error_code = 'abandoned', finished_at = now() WHERE id = %s",
                 (month.turns[-4][1].run_id,))
    stuck.status = "failed"
    return late_days


def test_a_generated_month_rolls_up_to_direct_sums_idempotently_and_late_rows_land(fresh):
    _, conn, price_ids = fresh
    first_day, days = previous_month()
    month, stuck = a_month_with_a_stuck_turn(conn, price_ids, first_day, days)

    first = rollup.incremental(conn)
    assert first.days[0] == first_day and first.days[-1] == datetime.now(UTC).date()
    assert first.watermark is not None
    assert_rollup_equals_direct_sums(conn, month.turns)
    assert_a_teams_rows_belong_to_the_team(conn)
    before, today = assert_rolling_up_again_changes_nothing(conn, first_day, month.last_day)

    late_days = late_rows(conn, price_ids, month, first_day, stuck)
    late_rolled = rollup.incremental(conn, overlap=timedelta(0))
    expected_days = {*late_days, stuck.started_at.date(), today - timedelta(days=1), today}
    assert set(late_rolled.days) == expected_days  # only what changed, plus yesterday and today
    assert snapshot(conn) != before
    assert_rollup_equals_direct_sums(conn, month.turns)
    # and once more: nothing changes
    after = snapshot(conn)
    rollup.incremental(conn)
    assert snapshot(conn) == after


def test_the_rollup_turns_jit_off_for_its_transaction_only_and_its_figures_match_jit_compiled_sums(fresh):
    """At millions of messages the rollup's plans pass jit_above_cost and LLVM compilation cost more than
    the rows an incremental run reads (docs/benchmarks.md, "Scale: 10 million messages"): the rollup
    sets ``jit = off`` for its own transaction (SET LOCAL: nothing stays on a pooled connection), and
    its figures are those of the direct sums compiled with JIT."""
    _, conn, price_ids = fresh
    first_day, _ = previous_month()
    month = costdata.generate_month(conn, price_ids, first_day, days=6, users=2, seed=5)
    assert conn.execute("SELECT pg_jit_available() AS ok").fetchone()["ok"]

    def jit() -> str:
        return conn.execute("SHOW jit").fetchone()["jit"]

    with conn.transaction():
        conn.execute("SET LOCAL jit = on")
        conn.execute("SET LOCAL jit_above_cost = 0")  # every other plan of this transaction is compiled
        rollup.rollup(conn, first_day, month.last_day)  # inside the caller's transaction
        assert jit() == "off"
    assert jit() == "on"  # only for that transaction: the session is as it was
    rollup.incremental(conn)
    assert jit() == "on"
    with conn.transaction():
        conn.execute("SET LOCAL jit_above_cost = 0")
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + DIRECT_SUMS).fetchone()["QUERY PLAN"][0]
        assert plan["JIT"]["Functions"] > 0  # the direct sums below are JIT-compiled
        assert_rollup_equals_direct_sums(conn, month.turns)


def test_a_range_recompute_repairs_the_days_it_covers_only(fresh):
    _, conn, price_ids = fresh
    first_day, _ = previous_month()
    month = costdata.generate_month(conn, price_ids, first_day, days=6, users=2, seed=11)
    rollup.rollup(conn, first_day, month.last_day)
    good = snapshot(conn)
    day2, day5 = first_day + timedelta(days=1), first_day + timedelta(days=4)
    conn.execute("UPDATE daily_costs SET cost_in_rands = cost_in_rands + 1, turns = turns + 1 WHERE day = %s", (day2,))
    conn.execute("DELETE FROM daily_costs WHERE day = %s", (day5,))
    result = rollup.rollup(conn, day2, day2)
    assert result.days == [day2] and result.mode == "range"
    assert [r for r in snapshot(conn) if r["day"] != day5] == [r for r in good if r["day"] != day5]
    assert not [r for r in snapshot(conn) if r["day"] == day5]  # outside the range: untouched
    rollup.rollup(conn, day5, day5)
    assert snapshot(conn) == good
    with pytest.raises(ValueError):
        rollup.rollup(conn, day5, day2)


def _small_october(conn, price_ids) -> list:
    """A few turns on fixed days of October 2026, the range of events/scheduled-range.json."""
    user = costdata.add_user(conn)
    at = datetime(2026, 10, 1, tzinfo=UTC)
    agent, team = (costdata.add_session(conn, user, agent="assistant", at=at),
                   costdata.add_session(conn, user, team="planner", at=at))
    specs = [
        TurnSpec(agent, datetime(2026, 10, 3, 8, tzinfo=UTC), [Call(SONNET, costdata.TokenUsage(1200, 800, 30000, 5000))]),
        TurnSpec(team, datetime(2026, 10, 17, 23, 59, 30, tzinfo=UTC), [Call(SONNET, costdata.TokenUsage(100, 50))],
                 [Call(HAIKU, costdata.TokenUsage(60, 40, 10, 0))], agent_name="planner",
                 stored_at=datetime(2026, 10, 18, 0, 0, 20, tzinfo=UTC)),
        TurnSpec(agent, datetime(2026, 10, 31, 12, tzinfo=UTC), [], status="failed"),
    ]
    return [(s, costdata.insert_turn(conn, price_ids, s)) for s in specs]


def _handler_process(url: str, event_file: str, **env: str) -> subprocess.CompletedProcess:
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(HANDLER.parent)!r})\n"
        "import handler\n"
        "out = handler.handler(json.load(open(sys.argv[1])), None)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('agno', 'anthropic', 'matplotlib', 'genai_prices')"
        " or m == 'chatcore.money.report')\n"
        "assert not bad, bad\n"
        "print(json.dumps(out))\n"
    )
    environment = {k: v for k, v in costdata.os.environ.items() if k != "RETENTION_DAYS"}
    return subprocess.run([sys.executable, "-c", code, str(EVENTS / event_file)], cwd=costdata.ROOT,
                          env={**environment, "DATABASE_URL": url, "DB_POOL_MAX": "1", **env},  # Lambda's pool
                          capture_output=True, text=True, timeout=120)


def _run_handler(url: str, event_file: str, **env: str) -> dict:
    result = _handler_process(url, event_file, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_handler_runs_both_sample_events_without_importing_agno(fresh):
    url, conn, price_ids = fresh
    turns = _small_october(conn, price_ids)
    # what the schedule also prunes: an October turn's stored events (finished long ago) but its final
    # event, an upload expired over a week ago; a fresh upload stays
    run_id = conn.execute("SELECT id FROM runs WHERE status <> 'running' AND finished_at < now() - interval '2 days' "
                          "ORDER BY id LIMIT 1").fetchone()["id"]
    conn.execute("INSERT INTO turn_events (run_id, seq, event, data) VALUES (%s, 1, 'RunStarted', '{}'), "
                 "(%s, 2, 'TurnCompleted', '{}')", (run_id, run_id))
    conn.execute("INSERT INTO uploads (id, user_id, key, mime_type, size, expires_at) "
                 "SELECT gen_random_uuid(), id, 'media/pending/uploads/x', 'image/jpeg', 1, now() - make_interval(days => d) "
                 "FROM users, unnest(ARRAY[8, 0]) AS d ORDER BY users.id LIMIT 2")
    scheduled = _run_handler(url, "scheduled-run.json")
    assert (scheduled["events_pruned"], scheduled["uploads_pruned"]) == (1, 1)
    kept = conn.execute("SELECT seq, event FROM turn_events WHERE run_id = %s", (run_id,)).fetchall()
    assert [(r["seq"], r["event"]) for r in kept] == [(2, "TurnCompleted")]
    # the rest of the housekeeping: nothing to do here, and the retention period is off by default
    assert scheduled["exports"] == {"exports_expired": 0, "exports_lost": 0, "exports_failed_deleted": 0}
    assert scheduled["deletions"] == {"resumed": 0, "done": 0, "unfinished": 0, "errors": 0}
    assert scheduled["retention"] == {"days": 0, "sessions_deleted": 0, "sessions_skipped": 0, "errors": 0,
                                      "unfinished": False}
    assert "failed" not in scheduled
    assert conn.execute("SELECT count(*) AS n FROM uploads").fetchone()["n"] == 1
    assert scheduled["mode"] == "incremental" and scheduled["from"] == "2026-10-03"
    assert scheduled["to"] == datetime.now(UTC).date().isoformat() and scheduled["watermark"]
    assert_rollup_equals_direct_sums(conn, turns)
    before = snapshot(conn)
    assert {r["day"] for r in before} == {date(2026, 10, 3), date(2026, 10, 17), date(2026, 10, 18), date(2026, 10, 31)}
    conn.execute("DELETE FROM daily_costs")
    ranged = _run_handler(url, "scheduled-range.json", RETENTION_DAYS="1")
    assert ranged["mode"] == "range" and (ranged["from"], ranged["to"], ranged["days"]) == ("2026-10-01", "2026-10-31", 31)
    # a range recomputed by hand does nothing else: no pruning, no deletion (October's sessions stay)
    assert not {"events_pruned", "exports", "deletions", "retention"} & set(ranged)
    assert conn.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 2
    assert snapshot(conn) == before
    # the turn that started before midnight: counted on its start day, its cost on the day it was stored
    row17 = conn.execute("SELECT sum(turns) AS t, sum(cost_usd) AS usd FROM daily_costs WHERE day = '2026-10-17'").fetchone()
    row18 = conn.execute("SELECT sum(turns) AS t, sum(cost_usd) AS usd FROM daily_costs WHERE day = '2026-10-18'").fetchone()
    assert (row17["t"], row17["usd"]) == (1, 0) and row18["t"] == 0 and row18["usd"] == turns[1][1].usd
    failed = conn.execute("SELECT model_id, turns, failed_turns FROM daily_costs WHERE day = '2026-10-31'").fetchall()
    assert failed == [{"model_id": SONNET, "turns": 1, "failed_turns": 1}]  # no call made: the agent's model


def test_rollup_cli(fresh):
    url, conn, price_ids = fresh
    turns = _small_october(conn, price_ids)
    out = costdata.run_cli("chatcore.money.rollup", "--from", "2026-10-01", "--to", "2026-10-31", database_url=url, check=True)
    assert "31 day(s) 2026-10-01 .. 2026-10-31" in out.stdout
    assert rollup.last_watermark(conn) is None  # a range does not move the watermark
    assert_rollup_equals_direct_sums(conn, turns)
    out = costdata.run_cli("chatcore.money.rollup", database_url=url, check=True)
    assert "rollup (incremental)" in out.stdout and rollup.last_watermark(conn) is not None
    bad = costdata.run_cli("chatcore.money.rollup", "--from", "2026-10-01", database_url=url)
    assert bad.returncode == 2 and "--from and --to go together" in bad.stderr
    bad = costdata.run_cli("chatcore.money.rollup", "--from", "2026-10-05", "--to", "2026-10-01", database_url=url)
    assert bad.returncode == 1 and "after" in bad.stderr


def test_a_failing_housekeeping_step_stops_neither_the_others_nor_the_rollup_and_fails_the_run(fresh):
    """S3 unreachable: the expired export and the inactive session cannot be deleted (their rows stay
    for the next run), while the rollup and the steps that need no S3 are done; the run then fails,
    so Lambda retries it and the failures queue and alarms see it."""
    from local.ports import free_port

    url, conn, price_ids = fresh
    turns = _small_october(conn, price_ids)  # sessions last active in October: inactive for RETENTION_DAYS=30
    run_id = turns[0][1].run_id
    conn.execute("INSERT INTO turn_events (run_id, seq, event, data) VALUES (%s, 1, 'RunStarted', '{}'), "
                 "(%s, 2, 'TurnCompleted', '{}')", (run_id, run_id))
    conn.execute("INSERT INTO exports (id, user_id, status, key, size, finished_at, expires_at) "
                 "SELECT gen_random_uuid(), id, 'ready', 'media/exports/x.zip', 1, now() - interval '2 days', "
                 "now() - interval '1 day' FROM users")
    result = _handler_process(url, "scheduled-run.json", RETENTION_DAYS="30",
                              AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}", S3_TIMEOUT="2")
    assert result.returncode != 0
    assert "the scheduled run's exports, retention failed" in result.stderr, result.stderr[-3000:]
    logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (done,) = [line for line in logs if line.get("message") == "scheduled run done, with failures"]
    assert done["mode"] == "incremental" and done["events_pruned"] == 1 and done["uploads_pruned"] == 0
    assert "exports" not in done and done["deletions"] == {"resumed": 0, "done": 0, "unfinished": 0, "errors": 0}
    assert done["retention"]["errors"] >= 1 and done["retention"]["sessions_deleted"] == 0
    assert set(done["failed"]) == {"exports", "retention"}
    assert_rollup_equals_direct_sums(conn, turns)  # the rollup itself was done
    assert conn.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 2  # kept: S3 first, then rows
    assert conn.execute("SELECT count(*) AS n FROM exports").fetchone()["n"] == 1
    # S3 back: the next run finishes what was left
    again = _run_handler(url, "scheduled-run.json", RETENTION_DAYS="30")
    assert again["retention"]["sessions_deleted"] == 2 and again["exports"]["exports_expired"] == 1
    assert conn.execute("SELECT count(*) AS n FROM sessions").fetchone()["n"] == 0
    # what the deleted sessions cost is still rolled up
    rollup.rollup(conn, date(2026, 10, 1), date(2026, 10, 31))
    kept = conn.execute("SELECT sum(cost_usd) AS usd, sum(turns) AS turns FROM daily_costs").fetchone()
    assert (kept["usd"], kept["turns"]) == (sum(t.usd for _, t in turns), len(turns))
