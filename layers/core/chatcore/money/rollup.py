"""The daily cost rollup: ``daily_costs`` recomputed from the messages (the messages table,
chat_events), runs and sessions.

    python -m chatcore.money.rollup                          # incremental (the scheduled mode)
    python -m chatcore.money.rollup --from 2026-11-01 --to 2026-11-20   # recompute a range of days

What a ``daily_costs`` row holds, per UTC day, user, agent-or-team and model:

- tokens and cost: the SUM of the user's usage rows (``chatcore.store.usage``) of that day (UTC).
  A row is attributed to what the session talks to: an agent session's rows to the agent, a team
  session's rows to the TEAM, the leader's and every member's alike, each under the model that
  made the call (so a team shows its leader's model and its members' models). The per-member
  split stays available on each message's agent_name.
- turns / failed_turns: top-level runs (a turn; never a member run) STARTED that day (UTC), and of
  those the ones with status ``failed``. A turn is counted once, under the model of its own first
  priced row (the agent's or the team leader's call); a turn that made no model call at all is
  counted under the agent's or team's configured model. ``completed`` turns with tool or member
  errors are not failed; a turn still ``running`` counts as a turn, not failed.

Days are recomputed whole (delete + insert in one transaction), so a run is idempotent and a
recomputed day always equals a direct sum over the messages. The incremental mode recomputes
today and yesterday (UTC) plus every day touched by rows created since the last watermark:
messages and turns whose UUIDv7 id (the time the application created them) is later than the
watermark less ``OVERLAP``, and turns that finished since then (a turn closed as abandoned days
later changes that day's failed_turns). Late-arriving rows, even back-dated ones, so still land.
The first incremental run recomputes everything. A deleted session's usage moves to
``deleted_session_usage`` (aggregated, no content) and is still counted, so deletion changes no
figure and needs no recompute. Re-pricing (chatcore.money.reprice) recomputes its own range.

Stdlib + psycopg only: the scheduled Lambda imports this, never agno.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from chatcore import cli, days
from chatcore.store import usage

STATE_NAME = "daily_costs"
# Rows created (by id time) up to this long before the watermark are looked at again: covers a
# transaction that generated its ids before the watermark but committed after, and clock skew
# between the application and the database. Re-looking is cheap: only whole days are recomputed.
OVERLAP = timedelta(hours=1)


@dataclass
class RollupResult:
    mode: str
    """``range`` or ``incremental``."""
    days: list[date] = field(default_factory=list)
    """The days recomputed, ascending."""
    rows: int = 0
    """daily_costs rows written."""
    watermark: datetime | None = None
    """The new watermark (incremental mode)."""

    def summary(self) -> dict:
        return {"mode": self.mode, "days": len(self.days),
                "from": self.days[0].isoformat() if self.days else None,
                "to": self.days[-1].isoformat() if self.days else None,
                "rows": self.rows, "watermark": self.watermark.isoformat() if self.watermark else None}


def uuid7_floor(at: datetime) -> UUID:
    """The smallest UUIDv7 of the millisecond ``at``: ids compare as bytes, time first."""
    ms = int(at.timestamp() * 1000)
    return UUID(int=max(ms, 0) << 80)


def _ranges(days: list[date]) -> list[tuple[date, date]]:
    """Contiguous runs of ``days`` (sorted, distinct) as inclusive (first, last) pairs."""
    out: list[tuple[date, date]] = []
    for day in days:
        if out and day == out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def _one(conn: psycopg.Connection, query: str, params: dict | None = None) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchone()


def _recompute(conn: psycopg.Connection, from_day: date, to_day: date) -> int:
    conn.execute(usage.DELETE_DAYS, {"from_day": from_day, "to_day": to_day})
    cur = conn.execute(usage.INSERT_DAYS, {"start": days.day_start(from_day),
                                           "end": days.day_start(to_day + timedelta(days=1))})
    return cur.rowcount


def rollup(conn: psycopg.Connection, from_day: date, to_day: date) -> RollupResult:
    """Recompute ``daily_costs`` for the UTC days ``from_day``..``to_day`` (inclusive), in one transaction.

    Idempotent; does not move the incremental watermark. Works inside a caller's transaction too.
    """
    if from_day > to_day:
        raise ValueError(f"from {from_day} is after to {to_day}")
    with conn.transaction():
        conn.execute(usage.LOCK_COSTS)
        conn.execute(usage.NO_JIT)
        rows = _recompute(conn, from_day, to_day)
    days = [from_day + timedelta(days=i) for i in range((to_day - from_day).days + 1)]
    return RollupResult(mode="range", days=days, rows=rows)


def incremental(conn: psycopg.Connection, *, overlap: timedelta = OVERLAP) -> RollupResult:
    """Recompute today and yesterday (UTC) and every day touched since the last watermark.

    The first run (no watermark yet) recomputes every day that has data. One transaction.
    """
    with conn.transaction():
        conn.execute(usage.LOCK_COSTS)
        conn.execute(usage.NO_JIT)
        new_watermark = _one(conn, usage.CLOCK)["now"]
        today = new_watermark.astimezone(UTC).date()
        days = {today, today - timedelta(days=1)}
        state = _one(conn, usage.READ_ROLLUP_STATE, {"name": STATE_NAME})
        if state is None:
            first = _one(conn, usage.FIRST_DAY)["first"]
            if first is not None:
                first_day = first.astimezone(UTC).date()
                days.update(first_day + timedelta(days=i) for i in range((today - first_day).days + 1))
        else:
            since = state["watermark"] - overlap
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(usage.TOUCHED_DAYS, {"id_floor": uuid7_floor(since), "since": since})
                days.update(row["day"] for row in cur)
        ordered = sorted(days)
        rows = sum(_recompute(conn, a, b) for a, b in _ranges(ordered))
        conn.execute(usage.WRITE_ROLLUP_STATE, {"name": STATE_NAME, "watermark": new_watermark, "days": len(ordered)})
    return RollupResult(mode="incremental", days=ordered, rows=rows, watermark=new_watermark)


def last_watermark(conn: psycopg.Connection) -> datetime | None:
    """When the last incremental rollup started (its data is complete up to about then)."""
    row = _one(conn, usage.LAST_WATERMARK, {"name": STATE_NAME})
    return None if row is None else row["watermark"]


def main(argv: list[str] | None = None) -> int:
    parser = cli.argument_parser("python -m chatcore.money.rollup", "Recompute the daily cost rollup (daily_costs).")
    parser.add_argument("--from", dest="from_day", type=cli.day, help="first UTC day to recompute (YYYY-MM-DD)")
    parser.add_argument("--to", dest="to_day", type=cli.day, help="last UTC day to recompute (YYYY-MM-DD), inclusive")
    args = parser.parse_args(argv)
    if (args.from_day is None) != (args.to_day is None):
        parser.error("--from and --to go together (neither: incremental)")

    def work(conn: psycopg.Connection) -> None:
        if args.from_day is not None:
            result = rollup(conn, args.from_day, args.to_day)
        else:
            result = incremental(conn)
        s = result.summary()
        print(f"rollup ({s['mode']}): {s['days']} day(s) {s['from']} .. {s['to']} recomputed, {s['rows']} row(s)"
              + (f"; watermark {s['watermark']}" if s["watermark"] else ""))

    return cli.run_with_connection(args, work)


if __name__ == "__main__":
    sys.exit(main())
