"""Exchange rates in the database: the fx CLI (add, import, list) and which rate a turn uses; the CSV
parsing itself is unit-tested (tests/unit/test_fx_csv.py). Everything that writes rates uses a fresh
database: the shared one's USD/ZAR rate is what other tests price with."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from chatcore.money import budgets, fx, fx_csv
from chatcore.store import rates, turns as turn_rows
from tests.support import costdata, databases
from tests.support.costdata import SONNET, Call, TurnSpec
from tests.support.fx_files import SARB_EXPORT


@pytest.fixture()
def fresh(stack):
    with databases.fresh(stack, "fx") as (url, conn):
        yield url, conn


def usd_zar(conn) -> dict[date, Decimal]:
    return {r["effective_date"]: r["rate"] for r in conn.execute(
        "SELECT effective_date, rate FROM fx_rates WHERE base = 'USD' AND quote = 'ZAR'")}


# ---- the database and the CLI

def test_add_import_and_list_through_the_cli(fresh, tmp_path):
    url, conn = fresh
    run = lambda *a: costdata.run_cli("chatcore.money.fx", *a, database_url=url)  # noqa: E731
    out = run("add", "--date", "2026-11-20", "--rate", "18.2345", "--source", "SARB 10:30")
    assert out.returncode == 0 and out.stdout.startswith("added: USD/ZAR 2026-11-20 18.2345"), out.stderr
    row = conn.execute("SELECT * FROM fx_rates WHERE effective_date = '2026-11-20'").fetchone()
    assert (row["base"], row["quote"], row["rate"], row["source"]) == ("USD", "ZAR", Decimal("18.2345"), "SARB 10:30")
    assert run("add", "--date", "2026-11-20", "--rate", "18.23450").stdout.startswith("unchanged")
    conflict = run("add", "--date", "2026-11-20", "--rate", "18.9")
    assert conflict.returncode == 1 and "already 18.2345" in conflict.stderr and "--replace" in conflict.stderr
    assert usd_zar(conn)[date(2026, 11, 20)] == Decimal("18.2345")
    assert run("add", "--date", "2026-11-20", "--rate", "18.9", "--replace").stdout.startswith("replaced")
    assert usd_zar(conn)[date(2026, 11, 20)] == Decimal("18.9")
    bad = run("add", "--date", "2026-11-31", "--rate", "18.1")
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    bad = run("add", "--date", "2026-11-25", "--rate", "18.1.1")
    assert bad.returncode == 2 and "not a plain decimal" in bad.stderr

    generic = tmp_path / "rates.csv"
    generic.write_text("date,rate\n2026-11-21,18.4\n2026-11-23,18.5\n")
    dry = run("import", str(generic), "--dry-run")
    assert dry.returncode == 0 and "would import 2 rate(s)" in dry.stdout and "2 added" in dry.stdout, dry.stderr
    assert date(2026, 11, 21) not in usd_zar(conn)
    out = run("import", str(generic))
    assert out.returncode == 0 and "imported 2 rate(s)" in out.stdout and "2 added, 0 unchanged" in out.stdout
    again = run("import", str(generic))
    assert "0 added, 2 unchanged, 0 replaced" in again.stdout
    assert conn.execute("SELECT source FROM fx_rates WHERE effective_date = '2026-11-21'").fetchone()["source"] \
        == "import rates.csv (generic)"

    sarb = tmp_path / "sarb.csv"
    sarb.write_text(SARB_EXPORT.replace("23/11/2026;18,3012", "24/11/2026;18,3012"))
    conflict = run("import", str(sarb), "--format", "sarb", "--source", "SARB EXCX135")
    assert conflict.returncode == 1 and f"{sarb}:6: USD/ZAR on 2026-11-20 is already 18.9" in conflict.stderr
    assert date(2026, 11, 24) not in usd_zar(conn)
    out = run("import", str(sarb), "--format", "sarb", "--source", "SARB EXCX135", "--replace")
    assert out.returncode == 0 and "1 added, 0 unchanged, 1 replaced" in out.stdout, out.stderr
    assert "2026-11-20 .. 2026-11-24" in out.stdout
    assert usd_zar(conn)[date(2026, 11, 20)] == Decimal("18.2345")
    assert usd_zar(conn)[date(2026, 11, 24)] == Decimal("18.3012")
    listed = run("list", "--from", "2026-11-20", "--to", "2026-11-30")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:-1]] == [
        "2026-11-20", "2026-11-21", "2026-11-23", "2026-11-24"]
    assert "18.2345" in listed.stdout and "4 USD/ZAR rate(s)" in listed.stdout


def test_an_import_is_all_or_nothing(fresh, tmp_path):
    url, conn = fresh
    before = usd_zar(conn)
    bad_line = tmp_path / "bad.csv"
    bad_line.write_text("date,rate\n2026-10-01,18.1\n2026-10-02,eighteen\n")
    out = costdata.run_cli("chatcore.money.fx", "import", str(bad_line), database_url=url)
    assert out.returncode == 1 and f"{bad_line}:3: rate 'eighteen'" in out.stderr
    assert usd_zar(conn) == before
    fx.add_rate(conn, date(2026, 10, 5), Decimal("17.5"), "manual")
    conflicting = tmp_path / "conflict.csv"
    conflicting.write_text("date,rate\n2026-10-04,18.1\n2026-10-05,18.2\n2026-10-06,18.3\n")
    out = costdata.run_cli("chatcore.money.fx", "import", str(conflicting), database_url=url)
    assert out.returncode == 1 and f"{conflicting}:3: USD/ZAR on 2026-10-05 is already 17.5" in out.stderr
    assert usd_zar(conn) == {**before, date(2026, 10, 5): Decimal("17.5")}  # 2026-10-04 was not written either
    out = costdata.run_cli("chatcore.money.fx", "import", str(conflicting), "--replace", database_url=url)
    assert out.returncode == 0 and "2 added, 0 unchanged, 1 replaced" in out.stdout
    missing = costdata.run_cli("chatcore.money.fx", "import", str(tmp_path / "none.csv"), database_url=url)
    assert missing.returncode == 1 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr


def test_rates_are_decimals_never_floats(fresh):
    _, conn = fresh
    with pytest.raises(fx_csv.FxError, match="Decimal"):
        fx.add_rate(conn, date(2026, 11, 20), 18.2345)  # type: ignore[arg-type]
    with pytest.raises(fx_csv.FxError, match="three capital letters"):
        fx.add_rate(conn, date(2026, 11, 20), Decimal("18.2"), base="usd")
    assert fx.add_rate(conn, date(2026, 11, 20), Decimal("0.0548"), base="ZAR", quote="USD") == "added"
    assert rates.rate_on(conn, date(2026, 11, 20))["rate"] == Decimal("18")  # USD/ZAR still the seed
    assert rates.rate_on(conn, date(2026, 11, 20), base="ZAR", quote="USD")["rate"] == Decimal("0.0548")


def test_a_turn_locks_the_latest_rate_on_or_before_today_and_new_rates_never_rewrite_rows(fresh):
    _, conn = fresh
    price_ids = costdata.seed_catalog(conn)
    today = datetime.now(UTC).date()
    user = costdata.add_user(conn, sub := f"fx-{today}")
    session = costdata.add_session(conn, user, agent="assistant")
    # only the seeded default so far
    with conn.transaction():
        locked = turn_rows.read_turn_start(conn, sub=sub, session_id=session, client_turn_id=None, stale_seconds=960, history_turns=10, month_start=budgets.month_bounds()[0], month_end=budgets.month_bounds()[1])
    assert (locked["fx_rate"], locked["fx_rate_date"]) == (Decimal("18"), date(2000, 1, 1))
    turn = costdata.insert_turn(conn, price_ids, TurnSpec(
        session, datetime.now(UTC) - timedelta(minutes=5), [Call(SONNET, costdata.TokenUsage(1200, 800, 30000, 5000))],
        stored_at=datetime.now(UTC) - timedelta(minutes=4)))
    stored = conn.execute("SELECT id, cost_usd, cost_in_rands, fx_rate, fx_rate_date, fx_rate_id FROM chat_events "
                          "WHERE run_id = %s ORDER BY id", (turn.run_id,)).fetchall()
    for day, rate in ((today - timedelta(days=3), "18.5"), (today, "18.2345"), (today + timedelta(days=1), "19.1")):
        assert fx.add_rate(conn, day, Decimal(rate), "test") == "added"
    with conn.transaction():
        locked = turn_rows.read_turn_start(conn, sub=sub, session_id=session, client_turn_id=None, stale_seconds=960, history_turns=10, month_start=budgets.month_bounds()[0], month_end=budgets.month_bounds()[1])
    assert (locked["fx_rate"], locked["fx_rate_date"]) == (Decimal("18.2345"), today)  # not tomorrow's
    assert rates.rate_on(conn, today - timedelta(days=1))["rate"] == Decimal("18.5")
    assert rates.rate_on(conn, date(1999, 12, 31)) is None
    # the stored rows keep the rate they were priced with
    assert conn.execute("SELECT id, cost_usd, cost_in_rands, fx_rate, fx_rate_date, fx_rate_id FROM chat_events "
                        "WHERE run_id = %s ORDER BY id", (turn.run_id,)).fetchall() == stored
    assert fx.add_rate(conn, today, Decimal("20"), "fix", replace=True) == "replaced"
    assert conn.execute("SELECT id, cost_usd, cost_in_rands, fx_rate, fx_rate_date, fx_rate_id FROM chat_events "
                        "WHERE run_id = %s ORDER BY id", (turn.run_id,)).fetchall() == stored
