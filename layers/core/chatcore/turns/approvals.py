"""A turn paused for the user's approval, and its continuation after the decision (POST
/sessions/{id}/turns/{run_id}/approvals), from any instance, minutes or days later.

**The pause.** A tool that acts (``requires_approval`` in its spec: ``set_reminder``) is agno's
confirmation tool: the model's call pauses agno's run (RunPaused). The turn then stores what it has
like any turn (``turns.finish``: the messages so far, the assistant message with the ``tool_use``
blocks included, each model call priced and billed now), with the run ``paused`` and one
``approvals`` row per pending call (its one-line summary written by the tool's spec), and ends its
stream with ``TurnPaused``. Nothing is held while it waits: no process, connection or lock.

**The decision** (``begin_continuation``), in this order:

1. a plain read: the caller's turn (404), paused (409 ``turn-not-paused``), within ``APPROVAL_TTL``
   (else it ends ``expired`` and 409 ``approval-expired``), one decision per pending call (422);
2. one short transaction, before any tool or model call: the budget's reservation made again (402),
   then the one conditional UPDATE that takes the run from ``paused`` to ``running`` (two decisions
   at once: the loser finds it running, 409 ``turn-not-paused``), the decisions recorded, and the
   continuation's rows read (the history, the run's messages so far, the rate in effect now);
3. with no transaction open: the approved calls run (``set_reminder`` writes its reminder once per
   call), a declined one's result tells the model the user declined (with their note); the results
   are stored at once as the run's messages;
4. the model is called again through the turn's own runner (``turns.run``): the same event
   vocabulary, the event ids after the pause's, the outcome stored as the same run (its rows and
   totals add both stretches; each call priced at the rate in effect when it is made). The model may
   call more tools, and pause again. A team resumes the member whose call paused it, then the leader,
   whose delegation gets the member's answer. The continuation is not compacted and carries no
   memory recall (the history it continues is the one the model saw).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from agno.models.message import Message
from uuid6 import uuid7

from chatcore import db
from chatcore.catalog import price_ids
from chatcore.catalog.agents import agent_specs
from chatcore.catalog.tools import ActingCall, acting_call
from chatcore.config import get_settings
from chatcore.errors import (
    ApprovalExpired, InvalidInput, NotFound, ServiceMisconfigured, StorageUnavailable, TurnNotPaused,
)
from chatcore.media.agno_storage import inline_for_model, storable_message
from chatcore.money.budgets import month_bounds, refuse_if_over
from chatcore.money.cost import CostCalculator, ExchangeRate
from chatcore.money.prices import TokenUsage
from chatcore.store import approvals as approval_rows, turns as turn_rows, usage as usage_rows
from chatcore.store.history import history_params
from chatcore.turns.claude import dearest_call_usd
from chatcore.turns.compaction import summary_messages, summary_tokens
from chatcore.turns.context import Budgets, build_context
from chatcore.turns.finish import flush_pending
from chatcore.turns.outcome import RunError, TurnOutcome
from chatcore.turns.registry import conversation_for
from chatcore.turns.team import delegated_member
from chatcore.turns.turn import BudgetAtStart, Continuation, MemberResume, PreparedTurn, TurnInput

log = logging.getLogger(__name__)

DECLINED = "The user declined this action, so it was not done."


@dataclass(frozen=True)
class Decision:
    """The user's decision on one pending call."""

    tool_call_id: str
    approved: bool
    note: str | None = None


def declined_result(note: str | None) -> str:
    """The tool result the model reads for a call the user declined."""
    return DECLINED + (f" The user's note: {note.strip()}" if note and note.strip() else "")


def _check_paused(row: dict[str, Any], run_id: UUID, ttl: int) -> None:
    """409 unless the turn waits for a decision within APPROVAL_TTL (an expired pause ends here)."""
    if row["status"] == "expired":
        raise ApprovalExpired("the approval request expired (APPROVAL_TTL); nothing ran", run_id=str(run_id))
    if row["status"] != "paused":
        raise TurnNotPaused(
            f"the turn is {row['status']}, not waiting for a decision (decided already?); follow it through "
            "GET /sessions/{session_id}/turns/{run_id}/events", run_id=str(run_id), run_status=row["status"])
    if row["expired"]:
        with db.connection() as conn:
            approval_rows.expire_run(conn, run_id, ttl)
        raise ApprovalExpired("the approval request expired (APPROVAL_TTL); nothing ran", run_id=str(run_id))


def _check_decisions(pending: list[dict[str, Any]], decisions: list[Decision]) -> None:
    ids = [d.tool_call_id for d in decisions]
    waiting = [p["tool_call_id"] for p in pending]
    if len(set(ids)) != len(ids) or set(ids) != set(waiting):
        raise InvalidInput("the decisions must name each pending call of the turn exactly once",
                           field="decisions", pending=waiting)


def _reservation(conversation: Any, fx_rate: Decimal) -> Decimal:
    """The most the continuation can cost, in rands: MAX_MODEL_CALLS_PER_TURN calls of a whole
    CONTEXT_MAX_TOKENS input at the dearest call of the agent or team (``turns.claude.dearest_call_usd``)."""
    settings = get_settings()
    usd = dearest_call_usd(conversation.spec, settings.context_max_tokens)
    return (usd * settings.max_model_calls_per_turn * fx_rate).quantize(Decimal("1e-10"))


def _usage_of(row: dict[str, Any]) -> tuple[TokenUsage, Decimal, Decimal]:
    return (TokenUsage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]),
            row["cost_usd"], row["cost_in_rands"])


def _claim(sub: str, session_id: UUID, run_id: UUID, row: dict[str, Any], decisions: list[Decision],
           conversation: Any) -> tuple[dict, list[dict], dict, BudgetAtStart | None]:
    """Step 2 (see the module): one short transaction; raises the 402 / 409 before anything changed.
    With the budget and the month's spend it read (the continuation's budget warnings, as a turn's)."""
    settings = get_settings()
    ttl = settings.approval_ttl
    with db.connection() as conn, conn.transaction():
        reservation, at_start = Decimal(0), None
        if row["monthly_budget_zar"] is not None:
            conn.execute(usage_rows.LOCK_USER, {"sub": sub})  # the user's turns reserve one at a time
            month_start, month_end = month_bounds()
            budget = usage_rows.budget_and_spend(conn, row["user_id"], month_start, month_end,
                                                 stale_seconds=settings.stale_turn_seconds)
            reservation = _reservation(conversation, row["fx_rate"])
            refuse_if_over(budget["monthly_budget_zar"], budget["spent"], month_start, reserved=budget["reserved"],
                           reservation=reservation)
            at_start = BudgetAtStart(row["user_id"], budget["monthly_budget_zar"], budget["spent"])
        claimed = approval_rows.claim(conn, run_id, ttl=ttl, reserved_zar=reservation)
        if claimed is not None:
            members = approval_rows.resume_members(conn, run_id)
            approval_rows.decide(conn, run_id, [
                {"tool_call_id": d.tool_call_id, "status": "approved" if d.approved else "declined", "note": d.note}
                for d in decisions])
            data = approval_rows.continuation_read(conn, run_id, **history_params(settings))
            return claimed, members, data, at_start
    # another decision won (or the pause expired meanwhile): say which
    with db.connection() as conn:
        again = approval_rows.read_decision(conn, sub=sub, session_id=session_id, run_id=run_id, ttl=ttl)
    if again is None:
        raise NotFound("no such turn")
    _check_paused(again, run_id, ttl)
    raise TurnNotPaused("another decision on this turn came first; follow it through its events",
                        run_id=str(run_id), run_status=again["status"])


def _run_tool(call: dict[str, Any], conversation: Any, user_id: UUID, session_id: UUID, run_id: UUID,
              now: datetime) -> tuple[str, bool]:
    """Run one approved call (its spec's tool, for this user and turn): its result, and whether it
    failed (a failure is its result: the model reads it, as with any tool)."""
    spec = agent_specs().get(call.get("agent_name") or "") or conversation.spec
    tool = spec.tool(call["tool"]) if hasattr(spec, "tool") else None
    if tool is None:
        return f"The tool {call['tool']} is no longer available; it was not run.", True
    token = acting_call.set(ActingCall(user_id=user_id, session_id=session_id, run_id=run_id,
                                       tool_call_id=call["tool_call_id"], now=now))
    try:
        return str(tool(**(call["arguments"] or {}))), False
    except Exception as e:  # noqa: BLE001 - the model reads the failure, as with any tool
        log.warning("approved call %s (%s) of turn %s failed: %s", call["tool_call_id"], call["tool"], run_id, e)
        return f"The tool failed: {e}", True
    finally:
        acting_call.reset(token)


def decided_event(call: dict[str, Any], decision: Decision, result: str, failed: bool, *, session_id: UUID,
                  run_id: UUID, agent_name: str, at: datetime) -> dict[str, Any]:
    """The ToolCallCompleted event of a decided call (agno's shape; ``tool.confirmed`` is the
    decision, ``result`` what the model was told), first in the continuation's stream."""
    member = call["call_run_id"] != str(run_id)
    return {"created_at": int(at.timestamp()), "run_id": call["call_run_id"], "session_id": str(session_id),
            "agent_id": agent_name, "agent_name": agent_name, **({"parent_run_id": str(run_id)} if member else {}),
            "tool": {"tool_call_id": call["tool_call_id"], "tool_name": call["tool"], "tool_args": call["arguments"],
                     "result": result, "tool_call_error": failed, "requires_confirmation": True,
                     "confirmed": decision.approved, "confirmation_note": decision.note}}


def _from_history(parts: dict[str, Any]) -> Message:
    message = Message.from_dict(dict(parts))
    message.from_history = True
    return message


def begin_continuation(sub: str, session_id: UUID, run_id: UUID, decisions: list[Decision]) -> PreparedTurn:
    """Steps 1 to 3 (see the module): the paused run claimed, its decided calls run and stored; the
    continuation ready to run. Raises the problem (404, 409, 422, 402, 503) before anything changed."""
    settings = get_settings()
    flush_pending()
    with db.connection() as conn:
        row = approval_rows.read_decision(conn, sub=sub, session_id=session_id, run_id=run_id,
                                          ttl=settings.approval_ttl)
    if row is None:
        raise NotFound("no such turn")
    _check_paused(row, run_id, settings.approval_ttl)
    pending = row["pending"] or []
    _check_decisions(pending, decisions)
    if row["fx_rate"] is None:
        raise ServiceMisconfigured("no USD/ZAR exchange rate is configured; add one to fx_rates")
    conversation = conversation_for(row["agent_name"], row["team_name"])
    claimed, members, data, budget = _claim(sub, session_id, run_id, row, decisions, conversation)
    try:
        prepared = _prepare(sub, session_id, run_id, row, pending, decisions, conversation, claimed, members, data)
        prepared.budget = budget  # its cost may cross 80 % or 100 % of the budget, as a turn's
        return prepared
    except Exception as e:
        log.exception("could not continue turn %s", run_id)
        outcome = TurnOutcome(session_id=session_id, run_id=run_id, status="failed",
                              error=RunError("storage-error", f"could not continue the turn ({e.__class__.__name__})"))
        values = outcome.run_row()
        usage, usd, zar = _usage_of(claimed)
        values.update(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                      cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
                      cost_usd=usd, cost_in_rands=zar)
        try:
            with db.connection() as conn:
                turn_rows.finish_run(conn, **values)
        except Exception:  # noqa: BLE001 - the stale-turn rule closes it later
            log.exception("could not close run %s", run_id)
        raise StorageUnavailable(f"could not continue the turn ({e.__class__.__name__}); it was closed as failed") from e


def _prepare(sub: str, session_id: UUID, run_id: UUID, row: dict, pending: list[dict], decisions: list[Decision],
             conversation: Any, claimed: dict, members: list[dict], data: dict) -> PreparedTurn:
    settings = get_settings()
    now = datetime.now(timezone.utc)
    by_id = {d.tool_call_id: d for d in decisions}
    # step 3: the decided calls, run (approved) or answered as declined, stored before any model call
    results: list[tuple[dict, Message]] = []
    decided: list[dict[str, Any]] = []
    for call in pending:
        decision = by_id[call["tool_call_id"]]
        content, failed = (_run_tool(call, conversation, row["user_id"], session_id, run_id, now)
                           if decision.approved else (declined_result(decision.note), False))
        results.append((call, Message(id=str(uuid7()), role="tool", tool_call_id=call["tool_call_id"],
                                      tool_name=call["tool"], tool_args=call["arguments"], content=content)))
        decided.append(decided_event(call, decision, content, failed, session_id=session_id, run_id=run_id,
                                     agent_name=call.get("agent_name") or conversation.name, at=now))
    with db.connection() as conn:
        turn_rows.insert_messages(conn, [{
            "id": UUID(message.id), "session_id": session_id, "run_id": UUID(call["call_run_id"]), "role": "tool",
            "agent_name": call.get("agent_name") or conversation.name,
            "message_parts": storable_message(message, session_id)} for call, message in results])
    for _, message in results:
        message.from_history = True

    own = data["run_messages"] or []
    leader = [_from_history(m["parts"]) for m in own if m["run_id"] == str(run_id)]
    user_message = next((m for m in leader if m.role == "user"), None) or Message(role="user", content="")
    history = []
    for parts in data["history"] or []:
        if parts.get("role") == "assistant" and not parts.get("content") and not parts.get("tool_calls"):
            continue  # a billed row of a stopped turn's aborted call: nothing the model said
        history.append(_from_history(parts))
    inline_for_model([*history, *leader])
    budgets = Budgets.configured(settings)
    summary = data["summary"]
    context = build_context(history, user_message, budgets,
                            overhead_tokens=conversation.overhead_tokens + summary_tokens(summary))
    prefix = (summary_messages(summary) if summary else []) + context.history

    waiting_members = {c["call_run_id"] for c in pending} - {str(run_id)}
    member = None
    if waiting_members:  # a team: the member whose call paused it continues first
        member_run = sorted(waiting_members)[0]
        member_name = next(c["agent_name"] for c in pending if c["call_run_id"] == member_run)
        member_messages = [_from_history(m["parts"]) for m in own if m["run_id"] == member_run]
        inline_for_model(member_messages)
        answered = {m.tool_call_id for m in leader if m.role == "tool"}
        delegation = next((call["id"] for m in reversed(leader) if m.role == "assistant"
                           for call in m.tool_calls or []
                           if call.get("id") not in answered and delegated_member(call) == member_name), None)
        member = MemberResume(agent_name=member_name, run_id=member_run, delegation_call_id=delegation,
                              messages=[*member_messages, *(m for c, m in results if c["call_run_id"] == member_run)])
        model_history = [*prefix, *leader]
    else:
        model_history = [*prefix, *leader, *(m for _, m in results)]

    prior = {str(claimed["id"]): _usage_of(claimed), **{str(m["id"]): _usage_of(m) for m in members}}
    known = {m.id for m in model_history} | {m.id for _, m in results}
    if member is not None:
        known |= {m.id for m in member.messages}
    fx = ExchangeRate(data["fx_rate_id"], data["fx_rate"], data["fx_rate_date"])
    return PreparedTurn(
        input=TurnInput(sub=sub, session_id=session_id, message=""), run_id=run_id, conversation=conversation,
        history=model_history, user_message=user_message, costs=CostCalculator(fx, price_ids()),
        continuation=Continuation(prior=prior, member=member, input_ids=known, last_seq=data["last_seq"] or 0,
                                  decided=decided))


async def open_continuation(sub: str, session_id: UUID, run_id: UUID, decisions: list[Decision],
                            wait_for_disconnect: Callable[[], Awaitable[None]] | None = None):
    """Decide on a paused turn (the problem, 4xx/503, is raised before any byte is sent) and return
    the continuation's stream (``turns.run.TurnStream``)."""
    import asyncio

    from chatcore.turns.run import TurnStream, stream_turn

    prepared = await asyncio.to_thread(begin_continuation, sub, session_id, run_id, decisions)
    return TurnStream(session_id, run_id, stream_turn(prepared, wait_for_disconnect))
