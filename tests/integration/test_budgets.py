"""Monthly budgets: a turn that would start over budget is a 402 problem before any model call, with nothing
stored or charged; status for the usage endpoint; the budgets CLI. Scoped to this file's own users."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

from chatcore.money import budgets
from chatcore.store import catalog as catalog_rows, plans, usage
from chatcore.errors import BudgetExceeded
from chatcore.money.prices import default_price_book
from tests.support import costdata, databases
from tests.support.costdata import SONNET, Call, TurnSpec


@pytest.fixture()
def price_ids(db_conn):
    book = default_price_book()
    return catalog_rows.sync_prices(db_conn, book.price_rows(), book.version)


def check_turn_allowed(conn, user_id, now=None) -> None:
    """What a turn's first statement decides: 402 when this month's spend has reached the budget."""
    start, end = budgets.month_bounds(now)
    row = usage.budget_and_spend(conn, user_id, start, end)
    budgets.refuse_if_over(row["monthly_budget_zar"], row["spent"], start)


def user_id_of(db_conn, sub: str):
    return db_conn.execute("SELECT id FROM users WHERE sub = %s", (sub,)).fetchone()["id"]


def spend(db_conn, price_ids, session_id, at: datetime, usage=None) -> Decimal:
    """A priced turn stored at ``at``; returns its cost in rands."""
    usage = usage or costdata.TokenUsage(20_000, 60_000, 100_000, 10_000)
    turn = costdata.insert_turn(db_conn, price_ids, TurnSpec(session_id, at - timedelta(seconds=5),
                                                             [Call(SONNET, usage)], stored_at=at))
    return turn.zar


def counts(db_conn, sub: str) -> tuple[int, int, Decimal]:
    row = db_conn.execute(
        "SELECT (SELECT count(*) FROM runs r JOIN sessions s ON s.id = r.session_id WHERE s.user_id = u.id) AS runs, "
        "(SELECT count(*) FROM chat_events ce JOIN sessions s ON s.id = ce.session_id WHERE s.user_id = u.id) AS rows, "
        "(SELECT coalesce(sum(ce.cost_in_rands), 0) FROM chat_events ce JOIN sessions s ON s.id = ce.session_id "
        " WHERE s.user_id = u.id) AS zar FROM users u WHERE u.sub = %s", (sub,)).fetchone()
    return row["runs"], row["rows"], row["zar"]


def test_a_user_over_budget_is_refused_before_the_model_is_called(user, standin, db_conn, price_ids):
    sid = user.new_session()
    uid = user_id_of(db_conn, user.sub)
    spent = spend(db_conn, price_ids, sid, datetime.now(UTC) - timedelta(minutes=1))
    assert spent > Decimal("1")
    budgets.set_budget(db_conn, user.sub, spent.quantize(Decimal("0.01"), rounding=ROUND_DOWN))
    other_session = user.new_session()
    before = counts(db_conn, user.sub)
    for session_id in (sid, other_session):
        r, events = user.turn(session_id, message="What is 12 * 7?")
        assert r.status_code == 402 and events == []
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["code"] == "budget-exceeded" and problem["status"] == 402
        assert problem["title"] == "Monthly budget exceeded" and "monthly budget" in problem["detail"]
        assert problem["month"] == datetime.now(UTC).strftime("%Y-%m")
        assert Decimal(problem["spent_zar"]) >= Decimal(problem["monthly_budget_zar"])
    assert standin.requests() == []  # no model call
    assert counts(db_conn, user.sub) == before  # no run, no row, nothing charged
    assert budgets.month_spend(db_conn, uid) == spent
    # raising the budget lets the user go on
    budgets.set_budget(db_conn, user.sub, Decimal("100000.00"))
    _, events = user.turn(other_session, message="hello again")
    assert events[-1]["event"] == "TurnCompleted" and standin.requests()


def test_a_user_under_budget_proceeds_and_sees_the_spend(user, standin, db_conn):
    sid = user.new_session()
    uid = user_id_of(db_conn, user.sub)
    budgets.set_budget(db_conn, user.sub, Decimal("500"))
    status = budgets.budget_status(db_conn, uid)
    assert status == {"month": datetime.now(UTC).strftime("%Y-%m"), "monthly_budget_zar": "500.00",
                      "spent_zar": "0.00", "reserved_zar": "0.00", "remaining_zar": "500.00", "warnings": []}
    r, events = user.turn(sid, message="What is 12 * 7?")
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted"
    assert standin.requests()
    zar = Decimal(events[-1]["data"]["cost"]["zar"])
    assert zar > 0 and budgets.month_spend(db_conn, uid) == zar
    status = budgets.budget_status(db_conn, uid)
    assert status["spent_zar"] == str(zar.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    assert Decimal(status["remaining_zar"]) == (Decimal("500") - zar).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_a_retried_turn_is_still_answered_when_the_budget_is_reached(user, standin, db_conn):
    sid = user.new_session()
    _, first = user.turn(sid, message="hello", client_turn_id="budget-retry-1")
    assert first[-1]["event"] == "TurnCompleted"
    budgets.set_budget(db_conn, user.sub, Decimal("0"))
    standin.reset()
    r, again = user.turn(sid, message="hello", client_turn_id="budget-retry-1")
    assert r.status_code == 200 and again == first  # the stored stream, not a new run
    r, _ = user.turn(sid, message="a new turn", client_turn_id="budget-retry-2")
    assert r.status_code == 402 and standin.requests() == []


def test_the_check_at_the_boundaries(db_conn, price_ids):
    sub = f"budget-{datetime.now(UTC).timestamp()}"
    uid = costdata.add_user(db_conn, sub)
    sid = costdata.add_session(db_conn, uid, agent="assistant")
    check_turn_allowed(db_conn, uid)  # no budget: always allowed
    assert budgets.budget_status(db_conn, uid) is None
    now = datetime.now(UTC)
    month_start, next_month = budgets.month_bounds(now)
    last_month = spend(db_conn, price_ids, sid, month_start - timedelta(seconds=1))
    this_month = spend(db_conn, price_ids, sid, max(month_start, now - timedelta(minutes=1)))
    assert budgets.month_spend(db_conn, uid, now) == this_month  # last month's spend does not count
    assert budgets.month_spend(db_conn, uid, month_start - timedelta(days=1)) == last_month
    # exactly at the budget is over it; a cent below is not
    db_conn.execute("UPDATE chat_events SET cost_in_rands = 12.34 WHERE id = (SELECT ce.id FROM chat_events ce "
                    "WHERE ce.session_id = %s AND ce.created_at >= %s AND ce.cost_in_rands <> 0)", (sid, month_start))
    budgets.set_budget(db_conn, sub, Decimal("12.35"))
    check_turn_allowed(db_conn, uid, now)
    assert budgets.budget_status(db_conn, uid, now) == {
        "month": now.strftime("%Y-%m"), "monthly_budget_zar": "12.35", "spent_zar": "12.34", "reserved_zar": "0.00",
        "remaining_zar": "0.01", "warnings": []}
    budgets.set_budget(db_conn, sub, Decimal("12.34"))
    with pytest.raises(BudgetExceeded) as info:
        check_turn_allowed(db_conn, uid, now)
    assert info.value.status == 402 and info.value.code == "budget-exceeded"
    assert info.value.to_problem()["spent_zar"] == "12.34"
    assert budgets.budget_status(db_conn, uid, now)["remaining_zar"] == "0.00"
    # next month starts from zero
    check_turn_allowed(db_conn, uid, next_month + timedelta(hours=1))


def test_the_month_spend_is_one_indexed_query(stack):
    """With realistic statistics (users with many sessions, a year of rows), the spend is read per session
    of the user from the partial covering index over priced rows, never by scanning the messages table (chat_events)."""
    with databases.fresh(stack, "budget_plan") as (url, conn):
        conn.execute("""
            INSERT INTO agents (id, name, model_provider_slug, model_id)
            VALUES (gen_random_uuid(), 'assistant', 'anthropic', 'claude-sonnet-5-5');
            INSERT INTO users (id, sub, monthly_budget_zar)
            SELECT gen_random_uuid(), 'plan-' || g, 500 FROM generate_series(1, 200) g;
            INSERT INTO sessions (id, user_id, agent_id)
            SELECT gen_random_uuid(), u.id, (SELECT id FROM agents) FROM users u, generate_series(1, 10);
            INSERT INTO runs (id, session_id, status) SELECT gen_random_uuid(), s.id, 'completed' FROM sessions s;
            INSERT INTO chat_events (id, session_id, run_id, role, message_parts, cost_in_rands, created_at)
            SELECT gen_random_uuid(), r.session_id, r.id, CASE WHEN g % 2 = 0 THEN 'assistant' ELSE 'user' END,
                   '{}', CASE WHEN g % 2 = 0 THEN 0.5 ELSE 0 END, now() - random() * interval '365 days'
            FROM runs r, generate_series(1, 30) g;
            ANALYZE;
        """)
        start, end = budgets.month_bounds()
        uid = conn.execute("SELECT id FROM users WHERE sub = 'plan-7'").fetchone()["id"]
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN " + usage.BUDGET_AND_SPEND,
            {"user_id": uid, "month_start": start, "month_end": end, "always": False,
             "stale_seconds": 960}))
        assert "Index Only Scan using chat_events_session_spend" in plan, plan
        assert "session_id = s.id" in plan, plan
        assert "Seq Scan on chat_events" not in plan, plan
        # a plan's tokens per day sums today's priced rows from the same index, their tokens included
        conn.execute("UPDATE plans SET tokens_per_day = 1000000 WHERE is_default")
        counts = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN " + plans.PLAN_STATUS, {"user_id": uid, "stale_seconds": 960}))
        assert "Index Only Scan using chat_events_session_spend" in counts, counts
        assert "Seq Scan on chat_events" not in counts, counts
        conn.execute("UPDATE plans SET tokens_per_day = NULL WHERE is_default")
        check_turn_allowed(conn, uid)


def test_budgets_cli(stack, db_conn):
    sub = f"budget-cli-{datetime.now(UTC).timestamp()}"
    url = stack.env["DATABASE_URL"]
    missing = costdata.run_cli("chatcore.money.budgets", "show", "--sub", sub, database_url=url)
    assert missing.returncode == 1 and "no user with sub" in missing.stderr
    costdata.add_user(db_conn, sub)
    out = costdata.run_cli("chatcore.money.budgets", "set", "--sub", sub, "--zar", "500", database_url=url, check=True)
    shown = json.loads(out.stdout)
    assert shown == {"sub": sub, "month": datetime.now(UTC).strftime("%Y-%m"), "monthly_budget_zar": "500.00",
                     "spent_zar": "0.00", "reserved_zar": "0.00", "remaining_zar": "500.00", "warnings": []}
    assert db_conn.execute("SELECT monthly_budget_zar FROM users WHERE sub = %s", (sub,)).fetchone()[
        "monthly_budget_zar"] == Decimal("500.00")
    assert json.loads(costdata.run_cli("chatcore.money.budgets", "show", "--sub", sub, database_url=url,
                                       check=True).stdout) == shown
    for bad in ("12.345", "-1", "abc", "NaN"):
        out = costdata.run_cli("chatcore.money.budgets", "set", "--sub", sub, "--zar", bad, database_url=url)
        assert out.returncode == 1 and out.stderr.startswith("error: budget"), (bad, out.stderr)
    cleared = json.loads(costdata.run_cli("chatcore.money.budgets", "clear", "--sub", sub, database_url=url,
                                          check=True).stdout)
    assert cleared["monthly_budget_zar"] is None and cleared["spent_zar"] == "0.00"
    assert db_conn.execute("SELECT monthly_budget_zar FROM users WHERE sub = %s", (sub,)).fetchone()[
        "monthly_budget_zar"] is None
