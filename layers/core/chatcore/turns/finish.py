"""The end of a turn: one transaction stores every new message of the turn with its cost, the member
runs and the turn's run with its outcome (``store_outcome``); a turn that cannot be stored while
the database stays down through its retries is spooled (``chatcore.spool``: written by the spool's
consumer once it is back) and kept by the process as a cache (``flush_pending``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg

from chatcore.money.prices import TokenUsage
from chatcore.config import get_settings
from chatcore.spool import queue as spool_queue
from chatcore.spool.records import store_record
from chatcore.turns.outcome import RunError, TurnOutcome
from chatcore.turns.tracking import RunRecord, RunTracker, priced_rows
from chatcore.turns.turn import PreparedTurn

# Pauses (seconds) between attempts to store a finished turn while the database is unreachable.
STORE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
log = logging.getLogger(__name__)


# Finished turns this process could not store (the database stayed unreachable), as their records:
# written, in order, before the next turn of the process begins or stores (``flush_pending``). Each is
# spooled too when a queue is configured; this is then only a cache of what the queue holds.
_pending: list[dict[str, Any]] = []


def kept_to_write(run_id: UUID) -> bool:
    """Whether the stored record of turn ``run_id`` waits in this process to be written (``_pending``)."""
    return any(finished["run_id"] == run_id for finished in _pending)


def flush_pending() -> int:
    """Write the turns kept while the database was unreachable; how many were written. Stops at the
    first that still fails (the database is still down): they are tried again next time."""
    written = 0
    while _pending:
        finished = _pending[0]
        try:
            store_record(finished)
        except psycopg.OperationalError:
            return written
        _pending.pop(0)
        written += 1
        log.info("turn %s, kept while the database was down, is stored", finished["run_id"])
    return written


def add_prior(run: TurnOutcome, prior: tuple | None) -> None:
    """A continued run's outcome: add what it cost before its pause (``Continuation.prior``)."""
    if prior is not None:
        usage, usd, zar = prior
        run.usage = (run.usage or TokenUsage()) + usage
        run.cost_usd += usd
        run.cost_zar += zar


def pending_calls(turn: PreparedTurn, tracker: RunTracker) -> list[dict[str, Any]]:
    """The calls a paused run waits on, each with its one-line summary written by its tool's spec."""
    from chatcore.catalog.agents import agent_specs
    from chatcore.catalog.specs import summary_of

    specs = agent_specs()
    calls = []
    for p in tracker.pending:
        spec = specs.get(p.get("agent_name") or "") or getattr(turn.conversation, "spec", None)
        tool = spec.tool(p["tool"]) if spec is not None and hasattr(spec, "tool") else None
        summary = summary_of(tool, p["arguments"]) if tool is not None else p["tool"]
        calls.append({**p, "summary": summary})
    return calls


def store_outcome(turn: PreparedTurn, tracker: RunTracker,
                  seal: Callable[[TurnOutcome], list[tuple[int, str, str]]] | None = None) -> TurnOutcome:
    """One transaction (one round trip, pipelined): every new message of the turn with its cost, the
    member runs, and the turn's run with its status, tokens and cost; and, when ``seal`` gives them
    (``turns.run``), the turn's last events with its final one, so they cost no round trip of their own."""
    now = datetime.now(timezone.utc)
    session_id = turn.input.session_id
    input_ids = turn.input_ids()
    prior = turn.continuation.prior if turn.continuation is not None else {}
    rows: list[dict[str, Any]] = []
    runs: list[tuple[RunRecord, TurnOutcome]] = []
    records = turn.conversation.records(tracker, input_ids)
    if turn.compaction is not None:  # the call that summarised older turns, billed with this turn
        records.append(turn.compaction.record)
    for record in records:
        run, record_rows = priced_rows(record, session_id=session_id, costs=turn.costs, now=now,
                                       client_disconnected=turn.client_disconnected)
        rows.extend(record_rows)
        runs.append((record, run))
    # and the memory consolidations its tool calls made, stored as they were made (turns.memory)
    billed = [r for _, r in runs] + (turn.memory.stored_runs if turn.memory is not None else [])
    total = TurnOutcome(
        session_id=session_id, run_id=turn.run_id, status="completed", tool_errors=tracker.tool_errors,
        usage=sum((r.usage for r in billed), TokenUsage()),
        cost_usd=sum((r.cost_usd for r in billed), Decimal(0)), cost_zar=sum((r.cost_zar for r in billed), Decimal(0)),
        member_errors=[{"run_id": str(r.run_id), "agent_name": record.agent_name, "code": r.error.code,
                        "message": r.error.message} for record, r in runs[1:] if r.error is not None],
        client_disconnected=turn.client_disconnected, usage_estimated=any(r.usage_estimated for r in billed))
    if turn.continuation is not None:  # the run's totals: what it cost before its pause, and now
        total.segment = (total.usage, total.cost_usd, total.cost_zar)
        add_prior(total, prior.get(str(turn.run_id)))
        for record, run in runs[1:]:  # a member run resumed by a continuation: its row adds both stretches
            add_prior(run, prior.get(str(record.run_uuid)))
    if tracker.paused:
        total.status = "paused"
        total.pending = pending_calls(turn, tracker)
        total.expires_at = (now + timedelta(seconds=get_settings().approval_ttl)).isoformat().replace("+00:00", "Z")
        waiting = {p["call_run_id"] for p in tracker.pending}
        for _, run in runs[1:]:
            if str(run.run_id) in waiting and run.status == "completed":
                run.status = "paused"
    elif tracker.stopped or tracker.root_run_id in tracker.cancelled:
        total.status = "cancelled"  # stopped by the user: what it generated is kept and charged
    elif tracker.error:
        total.status, total.error = "failed", RunError(tracker.error.code, tracker.error.message)
    elif total.member_errors:
        total.note = RunError("member-error", f"{len(total.member_errors)} member run(s) failed")
    elif tracker.tool_errors:
        total.note = RunError("tool-error", f"{tracker.tool_errors} tool call(s) failed")
    last_events = seal(total) if seal is not None else []
    finished = {
        "session_id": session_id, "run_id": turn.run_id, "events": last_events,
        "members": [{"insert": None if str(member.run_id) in prior else {
                         "run_id": member.run_id, "session_id": session_id, "agent_name": record.agent_name,
                         "parent_run_id": turn.run_id, "status": "running"},
                     "finish": member.run_row()} for record, member in runs[1:]],
        "messages": rows, "run": total.run_row(),
        "approvals": [{**{k: p[k] for k in ("tool_call_id", "tool", "arguments", "summary", "agent_name")},
                       "run_id": turn.run_id, "call_run_id": UUID(p["call_run_id"])}
                      for p in total.pending] if total.status == "paused" else [],
        "summary": None,
    }
    if turn.compaction is not None and turn.compaction.summary:
        c = turn.compaction
        finished["summary"] = {"session_id": session_id, "summary": c.summary, "covers_before": c.covers_before,
                               "turns": c.turns, "run_id": c.record.run_uuid}

    # A database blip (a restart, a failover) while the model ran: the write is tried again on a
    # fresh connection. The rows keep their ids, so an attempt whose COMMIT went through but whose
    # answer was lost shows as a duplicate key on the next one: the turn is stored. Still unreachable
    # after the retries (a failover takes a minute or two): the turn is spooled (``chatcore.spool``),
    # durable beyond this process, and its final event says ``stored: "pending"``.
    flush_pending()
    for delay in (*STORE_RETRY_DELAYS, None):
        try:
            store_record(finished)
            break
        except psycopg.OperationalError:
            if delay is None:
                _pending.append(finished)  # a cache: the next turn of this process writes it first
                if spool_queue.spool(finished):
                    total.spooled = True
                    return total
                log.error("turn %s could not be stored or spooled; kept to be written when the database is back",
                          turn.run_id)
                raise
            log.warning("could not store turn %s; trying again in %.1f s", turn.run_id, delay, exc_info=True)
            time.sleep(delay)
    return total
