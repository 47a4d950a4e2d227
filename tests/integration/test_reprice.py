"""Prices recorded on rows (price version) and the explicit, logged re-pricing backfill."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from chatcore.money import fx, reprice
from chatcore.money.cost import stored_amounts
from chatcore.money.prices import PRICES_PATH, default_price_book
from tests.support import costdata, databases
from tests.support.costdata import HAIKU, OLD_SONNET, SONNET, Call, TurnSpec

MONEY = Decimal("1e-10")
PRICED = "role = 'assistant' AND model_id IS NOT NULL"


def test_every_priced_row_records_the_price_version_it_used(user, standin, db_conn):
    book = default_price_book()
    entries = {f"{e['provider']}/{e['model']}@{e['effective_from']}": e for e in json.loads(PRICES_PATH.read_text())["models"]}
    agent_session = user.new_session()
    r = user.client.post("/sessions", json={"team": "planner"})
    assert r.status_code == 201, r.text
    team_session = r.json()["id"]
    for sid, message in ((agent_session, "What is 12 * 7?"), (team_session, "Split R300 three ways")):
        _, events = user.turn(sid, message=message)
        assert events[-1]["event"] == "TurnCompleted"
    rows = db_conn.execute(
        "SELECT ce.model_id, ce.created_at, p.price_key, p.version, p.model, p.entry, p.source FROM chat_events ce "
        "JOIN prices p ON p.id = ce.price_id WHERE ce.session_id = ANY(%s) AND ce.role = 'assistant' "
        "AND ce.model_id IS NOT NULL",
        ([agent_session, team_session],)).fetchall()
    unpriced = db_conn.execute(
        f"SELECT count(*) AS n FROM chat_events WHERE session_id = ANY(%s) AND {PRICED} AND price_id IS NULL",
        ([agent_session, team_session],)).fetchone()["n"]
    assert unpriced == 0 and {r["model_id"] for r in rows} == {SONNET, HAIKU}  # the team's member rows too
    for row in rows:
        assert row["version"] == book.version
        assert row["price_key"] == book.find(row["model_id"], row["created_at"]).price_key
        assert row["entry"] == entries[row["price_key"]]
        assert row["source"] == f"genai-prices {book.source_version}"


@pytest.fixture()
def fresh(stack):
    with databases.fresh(stack, "reprice") as (url, conn):
        yield url, conn, costdata.seed_catalog(conn)


def priced_rows(conn) -> dict:
    return {r["id"]: r for r in conn.execute(f"SELECT * FROM chat_events WHERE {PRICED} ORDER BY id")}


def genai_usd(row) -> Decimal:
    return calc_price(
        Usage(input_tokens=row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"],
              output_tokens=row["output_tokens"], cache_read_tokens=row["cache_read_tokens"],
              cache_write_tokens=row["cache_write_tokens"]),
        row["model_id"], provider_id="anthropic", genai_request_timestamp=row["created_at"]).total_price


def day_of(row) -> date:
    return row["created_at"].astimezone(UTC).date()


RANGE = ("--from", "2026-09-02", "--to", "2026-09-05")


def a_month_and_a_cache_turn(conn, price_ids):
    """Six generated days from 2026-09-01, and a turn with cache reads and writes, on a model priced by
    its own period; returns the cache turn's session."""
    month = costdata.generate_month(conn, price_ids, date(2026, 9, 1), days=6, users=2, seed=3)
    cache_session = costdata.add_session(conn, month.users[0], agent="assistant")
    costdata.insert_turn(conn, price_ids, TurnSpec(
        cache_session, datetime(2026, 9, 4, 10, tzinfo=UTC),
        [Call(OLD_SONNET, costdata.TokenUsage(1200, 800, 30000, 5000))]))
    return cache_session


def a_new_rate_and_a_wrongly_priced_row(conn) -> dict:
    """A new rate from the 3rd, and one row of the 2nd priced wrongly (say, by an old price table);
    returns that row."""
    before = priced_rows(conn)
    assert fx.add_rate(conn, date(2026, 9, 3), Decimal("18.2345"), "SARB") == "added"
    assert priced_rows(conn) == before  # a new rate never rewrites rows by itself
    wrong = next(r for r in before.values() if day_of(r) == date(2026, 9, 2))
    conn.execute("UPDATE chat_events SET cost_usd = cost_usd * 2, price_id = NULL WHERE id = %s", (wrong["id"],))
    return wrong


def assert_the_range_is_priced_exactly(conn, before: dict, after: dict, start: date, end: date) -> None:
    """In the range: genai-prices' cost of the row's tokens, at the rate of its day, the current price
    version, the tokens untouched. Outside it: untouched, even though the rate applies."""
    book = default_price_book()
    version_of = {r["id"]: r["version"] for r in conn.execute("SELECT id, version FROM prices")}
    for row in after.values():
        if not start <= day_of(row) <= end:
            assert row == before[row["id"]]  # outside the range: untouched, even though the rate applies
            continue
        rate = Decimal("18.2345") if day_of(row) >= date(2026, 9, 3) else Decimal(18)
        assert row["cost_usd"] == genai_usd(row).quantize(MONEY)
        assert row["cost_in_rands"] == (row["cost_usd"] * rate).quantize(MONEY)
        assert (row["fx_rate"], row["fx_rate_date"]) == (rate, date(2026, 9, 3) if rate != 18 else date(2000, 1, 1))
        assert version_of[row["price_id"]] == book.version
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "created_at"):
            assert row[k] == before[row["id"]][k]


def assert_the_cache_turn_is_genai_prices_times_the_stored_rate(conn, cache_session) -> None:
    cache_row = conn.execute(f"SELECT * FROM chat_events WHERE session_id = %s AND {PRICED}", (cache_session,)).fetchone()
    assert cache_row["cache_read_tokens"] == 30000 and cache_row["cache_write_tokens"] == 5000
    assert cache_row["cost_usd"] == genai_usd(cache_row) == Decimal("0.04335")
    assert cache_row["cost_in_rands"] == (genai_usd(cache_row) * cache_row["fx_rate"]).quantize(MONEY)
    assert cache_row["fx_rate"] == Decimal("18.2345")


def assert_run_totals_follow_their_rows(conn, runs_before: dict) -> int:
    """Each run's cost is the sum of its rows' (a team turn's run includes its member runs), its tokens
    untouched; returns how many runs changed."""
    totals = {r["id"]: r for r in conn.execute("""
        SELECT r.id, (SELECT coalesce(sum(ce.cost_usd), 0) FROM chat_events ce JOIN runs x ON x.id = ce.run_id
                      WHERE x.id = r.id OR (r.parent_run_id IS NULL AND x.parent_run_id = r.id)) AS usd,
                     (SELECT coalesce(sum(ce.cost_in_rands), 0) FROM chat_events ce JOIN runs x ON x.id = ce.run_id
                      WHERE x.id = r.id OR (r.parent_run_id IS NULL AND x.parent_run_id = r.id)) AS zar
        FROM runs r""")}
    runs_after = {r["id"]: r for r in conn.execute("SELECT * FROM runs")}
    for run_id, run in runs_after.items():
        assert (run["cost_usd"], run["cost_in_rands"]) == (totals[run_id]["usd"], totals[run_id]["zar"]), run_id
        assert run["input_tokens"] == runs_before[run_id]["input_tokens"]
    runs_changed = sum(1 for i in runs_after if runs_after[i] != runs_before[i])
    assert runs_changed > 0
    return runs_changed


def assert_the_backfill_is_logged(conn, before: dict, after: dict, in_range: list, expect_changed: list,
                                  runs_changed: int, start: date, end: date) -> None:
    """One row: who, why, the range, the price version, what was examined and changed, old and new totals."""
    log = conn.execute("SELECT * FROM cost_backfills").fetchall()
    assert len(log) == 1
    entry = log[0]
    assert (entry["performed_by"], entry["reason"], entry["from_day"], entry["to_day"]) == (
        "finance@example.com", "SARB rates imported", start, end)
    assert (entry["rows_examined"], entry["rows_changed"], entry["runs_changed"]) == (
        len(in_range), len(expect_changed), runs_changed)
    assert entry["price_version"] == default_price_book().version
    assert entry["old_cost_usd"] == sum(before[r["id"]]["cost_usd"] for r in in_range)
    assert entry["new_cost_usd"] == sum(after[r["id"]]["cost_usd"] for r in in_range)
    assert entry["old_cost_in_rands"] == sum(before[r["id"]]["cost_in_rands"] for r in in_range)
    assert entry["new_cost_in_rands"] == sum(after[r["id"]]["cost_in_rands"] for r in in_range)
    assert entry["new_cost_in_rands"] != entry["old_cost_in_rands"]


def assert_the_rollup_of_the_range_follows(conn, start: date, end: date) -> None:
    rolled = conn.execute("SELECT day, sum(cost_in_rands) AS zar FROM daily_costs WHERE day BETWEEN %s AND %s "
                          "GROUP BY day ORDER BY day", (start, end)).fetchall()
    direct = conn.execute("SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(cost_in_rands) AS zar "
                          "FROM chat_events WHERE created_at >= %s AND created_at < %s GROUP BY 1 ORDER BY 1",
                          (datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 9, 6, tzinfo=UTC))).fetchall()
    assert rolled == direct


def test_reprice_backfill_is_explicit_logged_and_exact(fresh):
    url, conn, price_ids = fresh
    start, end = date(2026, 9, 2), date(2026, 9, 5)
    cache_session = a_month_and_a_cache_turn(conn, price_ids)
    out = costdata.run_cli("chatcore.money.reprice", *RANGE, "--dry-run", database_url=url, check=True)
    assert "0 would change" in out.stdout  # priced exactly as a turn prices

    wrong = a_new_rate_and_a_wrongly_priced_row(conn)
    before = priced_rows(conn)
    runs_before = {r["id"]: r for r in conn.execute("SELECT * FROM runs")}
    in_range = [r for r in before.values() if start <= day_of(r) <= end]
    expect_changed = [r for r in in_range if day_of(r) >= date(2026, 9, 3)] + [wrong]

    # without --yes: refused; a dry run says what would change and writes nothing
    refused = costdata.run_cli("chatcore.money.reprice", *RANGE, database_url=url)
    assert refused.returncode == 2 and "without --yes" in refused.stderr and "dry run:" in refused.stdout
    dry = costdata.run_cli("chatcore.money.reprice", *RANGE, "--dry-run", database_url=url, check=True)
    assert f"{len(in_range)} priced row(s) examined, {len(expect_changed)} would change" in dry.stdout
    assert priced_rows(conn) == before and not conn.execute("SELECT * FROM cost_backfills").fetchall()

    done = costdata.run_cli("chatcore.money.reprice", *RANGE, "--yes", "--by", "finance@example.com",
                            "--reason", "SARB rates imported", database_url=url, check=True)
    assert f"{len(expect_changed)} changed" in done.stdout
    after = priced_rows(conn)
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {r["id"] for r in expect_changed}
    assert_the_range_is_priced_exactly(conn, before, after, start, end)
    assert_the_cache_turn_is_genai_prices_times_the_stored_rate(conn, cache_session)
    runs_changed = assert_run_totals_follow_their_rows(conn, runs_before)
    assert_the_backfill_is_logged(conn, before, after, in_range, expect_changed, runs_changed, start, end)
    assert_the_rollup_of_the_range_follows(conn, start, end)

    # again: nothing left to change, still logged
    again = reprice.reprice(conn, start, end, dry_run=False, performed_by="ops")
    assert again.rows_changed == 0 and again.runs_changed == 0 and priced_rows(conn) == after
    assert conn.execute("SELECT count(*) AS n FROM cost_backfills").fetchone()["n"] == 2


def test_reprice_refuses_what_it_cannot_price_and_writes_nothing(fresh):
    url, conn, price_ids = fresh
    costdata.generate_month(conn, price_ids, date(2026, 9, 1), days=2, users=1, seed=5)
    fx.add_rate(conn, date(2026, 9, 1), Decimal("19"), "later rate")
    victim = conn.execute(f"SELECT id FROM chat_events WHERE {PRICED} LIMIT 1").fetchone()["id"]
    conn.execute("UPDATE chat_events SET model_id = 'gpt-4o' WHERE id = %s", (victim,))
    before = priced_rows(conn)
    with pytest.raises(reprice.RepriceError, match="no pinned Anthropic price matches model id 'gpt-4o'"):
        reprice.reprice(conn, date(2026, 9, 1), date(2026, 9, 2), dry_run=False, performed_by="ops")
    assert priced_rows(conn) == before and not conn.execute("SELECT * FROM cost_backfills").fetchall()
    out = costdata.run_cli("chatcore.money.reprice", "--from", "2026-09-01", "--to", "2026-09-02", "--yes", database_url=url)
    assert out.returncode == 1 and "gpt-4o" in out.stderr
    with pytest.raises(reprice.RepriceError, match="after"):
        reprice.reprice(conn, date(2026, 9, 2), date(2026, 9, 1), dry_run=True, performed_by="ops")
    bad = costdata.run_cli("chatcore.money.reprice", "--from", "2026-09-01", "--to", "soon", database_url=url)
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_reprice_rewrites_the_searches_share_of_a_row_beside_its_cost(fresh):
    """A row's web searches are priced inside cost_usd and kept beside it (web_search_cost_usd /
    _in_rands, which /usage and the rollup read): a re-pricing at a new rate rewrites both, so the
    share never goes stale."""
    url, conn, price_ids = fresh
    a_month_and_a_cache_turn(conn, price_ids)
    row = next(r for r in priced_rows(conn).values() if day_of(r) == date(2026, 9, 4))
    price = default_price_book().find(row["model_id"], row["created_at"])
    old_usd, old_zar = stored_amounts(price.web_search_cost_usd(3), Decimal(18))
    assert old_usd > 0  # the model's price has a per-search field
    conn.execute("UPDATE chat_events SET web_searches = 3, web_search_cost_usd = %s, web_search_cost_in_rands = %s, "
                 "cost_usd = cost_usd + %s, cost_in_rands = cost_in_rands + %s WHERE id = %s",
                 (old_usd, old_zar, old_usd, old_zar, row["id"]))
    assert fx.add_rate(conn, date(2026, 9, 3), Decimal("18.2345"), "SARB") == "added"

    costdata.run_cli("chatcore.money.reprice", *RANGE, "--yes", "--by", "finance@example.com",
                     "--reason", "SARB rates imported", database_url=url, check=True)
    after = conn.execute("SELECT * FROM chat_events WHERE id = %s", (row["id"],)).fetchone()
    new_usd, new_zar = stored_amounts(price.web_search_cost_usd(3), Decimal("18.2345"))
    assert (after["web_searches"], after["web_search_cost_usd"], after["web_search_cost_in_rands"]) == (
        3, new_usd, new_zar)
    assert new_zar != old_zar
    assert after["cost_usd"] == (genai_usd(after) + price.web_search_cost_usd(3)).quantize(MONEY)
    assert after["cost_in_rands"] == (after["cost_usd"] * Decimal("18.2345")).quantize(MONEY)
    rolled = conn.execute("SELECT sum(web_searches) AS n, sum(web_search_cost_in_rands) AS zar FROM daily_costs "
                          "WHERE day = %s", (date(2026, 9, 4),)).fetchone()
    assert (rolled["n"], rolled["zar"]) == (3, new_zar)
