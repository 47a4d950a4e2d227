"""The spend report: CSV figures equal direct SQL sums over the messages for each grouping; the PNG chart."""

from __future__ import annotations

import csv
import struct
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support import costdata, databases

FIRST, LAST = date(2026, 8, 3), date(2026, 8, 12)
FIGURES = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "cost_in_rands")

# The same groupings computed straight from the messages (costs) and runs (turns), not from daily_costs.
GROUPS = {
    "day": ("(ce.created_at AT TIME ZONE 'UTC')::date::text", "(r.started_at AT TIME ZONE 'UTC')::date::text"),
    "agent": ("(CASE WHEN s.team_id IS NULL THEN 'agent' ELSE 'team' END) || '|' || coalesce(t.name, a.name)",
              "(CASE WHEN s.team_id IS NULL THEN 'agent' ELSE 'team' END) || '|' || coalesce(t.name, a.name)"),
    "user": ("u.sub", "u.sub"),
}
JOINS = ("JOIN sessions s ON s.id = {t}.session_id JOIN users u ON u.id = s.user_id "
         "LEFT JOIN agents a ON a.id = s.agent_id LEFT JOIN teams t ON t.id = s.team_id")


@pytest.fixture(scope="module")
def month(stack):
    with databases.fresh(stack, "report") as (url, conn):
        price_ids = costdata.seed_catalog(conn)
        costdata.generate_month(conn, price_ids, FIRST - timedelta(days=2), days=14, users=3, seed=21)
        yield url, conn


def direct_costs(conn, by: str) -> dict[str, dict]:
    start, end = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC), \
        datetime.combine(LAST + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    if by == "model":
        key, joins = "ce.model_id", "JOIN sessions s ON s.id = ce.session_id"
    else:
        key, joins = GROUPS[by][0], JOINS.format(t="ce")
    rows = conn.execute(
        f"SELECT {key} AS k, {', '.join(f'sum(ce.{f}) AS {f}' for f in FIGURES)} FROM chat_events ce {joins} "
        f"WHERE ce.created_at >= %s AND ce.created_at < %s AND ce.model_id IS NOT NULL GROUP BY 1", (start, end))
    return {r["k"]: r for r in rows}


def direct_turns(conn, by: str) -> dict[str, tuple[int, int]]:
    if by == "model":
        return {}
    start, end = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC), \
        datetime.combine(LAST + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    rows = conn.execute(
        f"SELECT {GROUPS[by][1]} AS k, count(*) AS turns, count(*) FILTER (WHERE r.status = 'failed') AS failed "
        f"FROM runs r {JOINS.format(t='r')} WHERE r.parent_run_id IS NULL AND r.started_at >= %s "
        f"AND r.started_at < %s GROUP BY 1", (start, end))
    return {r["k"]: (r["turns"], r["failed"]) for r in rows}


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def csv_key(by: str, row: dict) -> str:
    return {"day": lambda: row["day"], "agent": lambda: f"{row['kind']}|{row['name']}",
            "model": lambda: row["model_id"], "user": lambda: row["user_sub"]}[by]()


@pytest.mark.parametrize("by", ["day", "agent", "model", "user"])
def test_csv_figures_equal_sql_sums_over_the_messages(month, tmp_path, by):
    url, conn = month
    out_csv = tmp_path / f"spend-{by}.csv"
    out = costdata.run_cli("chatcore.money.report", "--from", FIRST.isoformat(), "--to", LAST.isoformat(), "--by", by,
                           "--csv", str(out_csv), database_url=url, check=True)
    assert f"Spend {FIRST} .. {LAST} by {by} (UTC days; rollup as of" in out.stdout
    rows = read_csv(out_csv)
    header = list(rows[0])
    assert header[-8:] == ["turns", "failed_turns", *FIGURES]
    direct = direct_costs(conn, by)
    got = {csv_key(by, r): r for r in rows}
    if by == "day":  # every day of the range, zeros included
        assert list(got) == [(FIRST + timedelta(days=i)).isoformat() for i in range((LAST - FIRST).days + 1)]
    for key, row in got.items():
        for f in FIGURES:
            expected = direct[key][f] if key in direct else 0
            assert Decimal(row[f]) == expected, (by, key, f)  # exact: to the cent and beyond
    assert set(direct) <= set(got)
    turns = direct_turns(conn, by)
    for key, (n, failed) in turns.items():
        assert (int(got[key]["turns"]), int(got[key]["failed_turns"])) == (n, failed)
    assert sum(int(r["turns"]) for r in rows) == conn.execute(
        "SELECT count(*) AS n FROM runs WHERE parent_run_id IS NULL AND started_at >= %s AND started_at < %s",
        (datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC),
         datetime.combine(LAST + timedelta(days=1), datetime.min.time(), tzinfo=UTC))).fetchone()["n"]
    # the printed total, rounded for reading
    total_zar = sum(Decimal(r["cost_in_rands"]) for r in rows)
    total_line = next(line for line in out.stdout.splitlines() if line.startswith("total"))
    assert total_line.split()[-1] == str(total_zar.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP"))


def test_png_chart_is_a_png(month, tmp_path):
    url, _ = month
    for by in ("agent", "day"):
        png = tmp_path / f"spend-{by}.png"
        costdata.run_cli("chatcore.money.report", "--from", FIRST.isoformat(), "--to", LAST.isoformat(), "--by", by,
                         "--png", str(png), database_url=url, check=True)
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 600 and height >= 400 and len(data) > 5000
        assert data[-8:-4] == b"IEND"


def test_no_rollup_reports_as_of_the_last_rollup_and_matplotlib_only_for_png(stack, tmp_path):
    with databases.fresh(stack, "report_norollup") as (url, conn):
        price_ids = costdata.seed_catalog(conn)
        user = costdata.add_user(conn)
        session = costdata.add_session(conn, user, agent="assistant")
        costdata.insert_turn(conn, price_ids, costdata.TurnSpec(
            session, datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9),
            [costdata.Call(costdata.SONNET, costdata.TokenUsage(5000, 3000, 20000, 1000))]))
        out = costdata.run_cli("chatcore.money.report", "--from", FIRST.isoformat(), "--to", FIRST.isoformat(),
                               "--no-rollup", database_url=url, check=True)
        assert "never rolled up" in out.stdout and out.stdout.splitlines()[-1].split()[-1] == "0.00"
        code = (
            "import sys\nfrom chatcore.money import report\n"
            f"assert report.main(['--from', '{FIRST}', '--to', '{FIRST}', '--csv', sys.argv[1]]) == 0\n"
            "assert 'matplotlib' not in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.csv")], cwd=costdata.ROOT, check=True,
                       env={**costdata.os.environ, "DATABASE_URL": url}, capture_output=True)
        out = costdata.run_cli("chatcore.money.report", "--from", FIRST.isoformat(), "--to", FIRST.isoformat(),
                               "--no-rollup", database_url=url, check=True)
        assert "rollup as of" in out.stdout and out.stdout.splitlines()[-1].split()[-1] != "0.00"
        bad = costdata.run_cli("chatcore.money.report", "--from", "2026-08-02", "--to", "2026-08-01", database_url=url)
        assert bad.returncode == 2
