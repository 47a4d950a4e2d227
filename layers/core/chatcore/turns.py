"""A turn of a session: store the user's message, run the agent, stream its events, store and price the result.

The order is what keeps nothing lost:
1. one transaction locks the session, answers a retried ``client_turn_id`` from what is stored,
   refuses a second concurrent turn, and records the run as ``running``;
2. large images go to S3, then the user's message is stored and the history loaded;
3. the agent runs in its own task, so a client that disconnects does not stop it;
4. one transaction stores the turn's new messages, each priced, and the run's outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import anyio
from agno.media import Image
from agno.models.message import Message
from agno.run.agent import RunOutput
from agno.run.team import TeamRunOutput
from uuid6 import uuid7

from chatcore import db, observability, sse, storage
from chatcore.budgets import month_bounds, refuse_if_over
from chatcore.config import get_settings
from chatcore.costing import ExchangeRate, Pricer, usage_from_metrics
from chatcore.errors import Conflict, InvalidInput, NotFound, ServiceMisconfigured, StorageUnavailable
from chatcore.images import ImageUpload
from chatcore.media import inline_for_model, storable_message, to_agno_image
from chatcore.pricing import TokenUsage
from chatcore.catalog import price_ids
from chatcore.runtime import Conversation, EventTracker, RunError, conversation_for

log = logging.getLogger(__name__)


@dataclass
class TurnInput:
    sub: str
    session_id: UUID
    message: str
    images: list[ImageUpload] = field(default_factory=list)
    client_turn_id: str | None = None


@dataclass
class StoredOutcome:
    """A turn already stored under the same client_turn_id: answered, not run again."""

    run_id: UUID
    row: dict[str, Any]


@dataclass
class PreparedTurn:
    input: TurnInput
    run_id: UUID
    conversation: Conversation
    history: list[Message]
    user_message: Message
    pricer: Pricer
    client_disconnected: bool = False
    outcome: dict[str, Any] | None = None


def _usage_dict(u: TokenUsage) -> dict[str, int]:
    return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens}


def _completed_payload(session_id: UUID, run_id: UUID, usage: TokenUsage, usd: Decimal, zar: Decimal,
                       **extra: Any) -> dict[str, Any]:
    return {"session_id": str(session_id), "run_id": str(run_id), "usage": _usage_dict(usage),
            "cost": {"usd": str(usd), "zar": str(zar)}, **extra}


def stored_outcome_events(session_id: UUID, stored: StoredOutcome) -> list[tuple[str, dict]]:
    """The final event of a turn that was already run, for a retried client_turn_id."""
    r = stored.row
    if r["status"] == "running":
        raise Conflict("this turn is still running; retry later to get its outcome", run_id=str(stored.run_id))
    if r["status"] == "failed":
        return [("TurnFailed", {"session_id": str(session_id), "run_id": str(stored.run_id),
                                "error": {"code": r["error_code"], "message": r["error_message"]},
                                "replayed": True})]
    usage = TokenUsage(r["input_tokens"], r["output_tokens"], r["cache_read_tokens"], r["cache_write_tokens"])
    return [("TurnCompleted", _completed_payload(session_id, stored.run_id, usage, r["cost_usd"],
                                                 r["cost_in_rands"], replayed=True))]


def begin_turn(turn: TurnInput) -> PreparedTurn | StoredOutcome:
    """Steps 1 and 2, in two database round trips (one transaction, pipelined):

    1. one statement locks the user's session and reads all the turn decides on (404, a stored
       outcome for a repeated client_turn_id, 402 over budget, 409 while a turn runs, the history);
    2. large images go to S3 (content-addressed keys, so a retry overwrites nothing new), then the
       run and the user's message are inserted and the transaction commits.
    """
    settings = get_settings()
    if not turn.message.strip() and not turn.images:
        raise InvalidInput("a turn needs a message or an image", field="message")
    run_id = uuid7()
    month_start, month_end = month_bounds()
    with db.connection() as conn, db.pipelined_transaction(conn):
        row = storage.read_turn_start(
            conn, sub=turn.sub, session_id=turn.session_id, client_turn_id=turn.client_turn_id,
            stale_seconds=settings.stale_turn_seconds, history_turns=settings.history_max_turns,
            month_start=month_start, month_end=month_end)
        if row is None:
            raise NotFound("no such session")
        if row["prior_id"] is not None:
            return StoredOutcome(run_id=row["prior_id"], row={
                k.removeprefix("prior_"): v for k, v in row.items() if k.startswith("prior_")})
        # 402 before anything is stored or any model call
        refuse_if_over(row["monthly_budget_zar"], row["month_spent"], month_start)
        if row["running_id"] is not None:
            if not row["running_stale"]:
                raise Conflict("a turn is already running in this session; wait for it to finish",
                               run_id=str(row["running_id"]))
            conn.execute(storage.ABANDON_TURN, {"id": row["running_id"]})
        if row["fx_rate"] is None:
            raise ServiceMisconfigured("no USD/ZAR exchange rate is configured; add one to fx_rates")
        conversation = conversation_for(row["agent_name"], row["team_name"])
        try:
            images = [to_agno_image(img, turn.session_id, str(uuid7())) for img in turn.images]
        except Exception as e:  # noqa: BLE001 - S3 down: nothing is stored, the app may retry
            log.exception("could not upload the images of a turn")
            raise StorageUnavailable(f"could not store the images ({e.__class__.__name__}); "
                                     "nothing was stored, try again") from e
        stored_message = Message(id=str(uuid7()), role="user", content=turn.message, images=images or None)
        storage.insert_run(conn, run_id=run_id, session_id=turn.session_id, agent_name=conversation.name,
                           client_turn_id=turn.client_turn_id)
        storage.insert_chat_events(conn, [{
            "id": UUID(stored_message.id), "session_id": turn.session_id, "run_id": run_id,
            "role": "user", "agent_name": None, "message_parts": stored_message.to_dict(),
        }])
    # The model's copy of the message: the same id and text, the images as the bytes we have.
    user_message = Message(id=stored_message.id, role="user", content=turn.message, images=[
        Image(id=image.id, content=upload.content, mime_type=upload.mime_type)
        for image, upload in zip(images, turn.images)] or None)
    history = []
    for message_dict in row["history"] or []:
        message = Message.from_dict(message_dict)
        message.from_history = True
        history.append(message)
    inline_for_model(history)
    fx = ExchangeRate(row["fx_rate_id"], row["fx_rate"], row["fx_rate_date"])
    return PreparedTurn(input=turn, run_id=run_id, conversation=conversation, history=history,
                        user_message=user_message, pricer=Pricer(fx, price_ids()))


def _fail_run(conn, run_id: UUID, code: str, message: str) -> None:
    try:
        with conn.transaction():
            storage.finish_run(conn, id=run_id, status="failed", error_code=code, error_message=message,
                               client_disconnected=False, input_tokens=0, output_tokens=0,
                               cache_read_tokens=0, cache_write_tokens=0, cost_usd=0, cost_in_rands=0)
    except Exception:  # noqa: BLE001 - the original error is what the caller reports
        log.exception("could not mark run %s failed", run_id)


def _fail_run_standalone(run_id: UUID, code: str, message: str) -> None:
    with db.connection() as conn:
        _fail_run(conn, run_id, code, message)


async def _run_and_store(turn: PreparedTurn, emit: Callable[[str, dict], None]) -> None:
    """Steps 3 and 4: run the conversation, forward its events, store the outcome."""
    tracker = EventTracker(root_run_id=str(turn.run_id))
    started = time.perf_counter()
    try:
        async for item in turn.conversation.stream(
            history=turn.history, message=turn.user_message, run_id=str(turn.run_id),
            session_id=str(turn.input.session_id), user_id=turn.input.sub,
        ):
            if isinstance(item, (RunOutput, TeamRunOutput)):
                tracker.outputs.append(item)
                continue
            tracker.see(item)
            emit(item.event, item.to_dict())
    except Exception as e:  # noqa: BLE001 - our own failure is stored and reported, never lost
        log.exception("turn %s failed", turn.run_id)
        tracker.errors[tracker.root_run_id] = RunError("internal-error", f"{e.__class__.__name__}: {e}")
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    try:
        final = await asyncio.to_thread(_store_outcome, turn, tracker)
    except Exception as e:  # noqa: BLE001
        log.exception("could not store turn %s", turn.run_id)
        final = ("TurnFailed", {"session_id": str(turn.input.session_id), "run_id": str(turn.run_id),
                                "error": {"code": "storage-error",
                                          "message": f"could not store the turn: {e.__class__.__name__}"}})
        await asyncio.to_thread(_fail_run_standalone, turn.run_id, "storage-error", str(e)[:500])
    final[1]["duration_ms"] = elapsed_ms
    turn.outcome = {"event": final[0], **final[1]}
    observability.record_turn(turn.outcome)
    emit(*final)


def _store_outcome(turn: PreparedTurn, tracker: EventTracker) -> tuple[str, dict]:
    """One transaction: every new message of the turn with its cost, and the status of each run."""
    now = datetime.now(timezone.utc)
    session_id = turn.input.session_id
    input_ids = {m.id for m in turn.history} | {turn.user_message.id}
    records = turn.conversation.records(tracker, input_ids)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for record in records:
        usage = TokenUsage()
        usd = zar = Decimal(0)
        for message in record.messages:
            if message.role == "system":
                continue
            fields: dict[str, Any] = {}
            if message.role == "assistant" and record.model_id:
                cost = turn.pricer.cost(record.model_id, usage_from_metrics(message.metrics), now)
                fields = turn.pricer.row_fields(cost)
                usage = usage + cost.usage
                usd += cost.usd
                zar += cost.zar
            rows.append({
                "id": uuid7(), "session_id": session_id, "run_id": record.run_uuid,
                "role": message.role, "agent_name": record.agent_name,
                "model_provider_slug": "anthropic" if message.role == "assistant" else None,
                "model_id": record.model_id if message.role == "assistant" else None,
                "message_parts": storable_message(message, session_id), **fields,
            })
        runs.append({"record": record, "usage": usage, "usd": usd, "zar": zar})
    total = sum((r["usage"] for r in runs), TokenUsage())
    total_usd = sum((r["usd"] for r in runs), Decimal(0))
    total_zar = sum((r["zar"] for r in runs), Decimal(0))
    error = tracker.error
    member_errors = [{"run_id": str(r["record"].run_uuid), "agent_name": r["record"].agent_name,
                      "code": r["record"].error.code, "message": r["record"].error.message}
                     for r in runs[1:] if r["record"].error is not None]
    if error:
        status, code, message = "failed", error.code, error.message[:2000]
    elif member_errors:
        status, code, message = "completed", "member-error", f"{len(member_errors)} member run(s) failed"
    elif tracker.tool_errors:
        status, code, message = "completed", "tool-error", f"{tracker.tool_errors} tool call(s) failed"
    else:
        status, code, message = "completed", None, None
    # one round trip: the whole transaction is pipelined
    with db.connection() as conn:
        with db.pipelined_transaction(conn):
            for r in runs[1:]:
                record = r["record"]
                storage.insert_run(conn, run_id=record.run_uuid, session_id=session_id,
                                   agent_name=record.agent_name, parent_run_id=turn.run_id, status="running")
                storage.finish_run(conn, id=record.run_uuid, status="failed" if record.error else "completed",
                                   error_code=record.error.code if record.error else None,
                                   error_message=record.error.message[:2000] if record.error else None,
                                   client_disconnected=turn.client_disconnected,
                                   **_usage_dict(r["usage"]), cost_usd=r["usd"], cost_in_rands=r["zar"])
            storage.insert_chat_events(conn, rows)
            storage.finish_run(conn, id=turn.run_id, status=status, error_code=code, error_message=message,
                               client_disconnected=turn.client_disconnected, **_usage_dict(total),
                               cost_usd=total_usd, cost_in_rands=total_zar)
            conn.execute(storage.TOUCH_SESSION, {"session_id": session_id})
    cost = {"usd": str(total_usd), "zar": str(total_zar)}
    if error:
        return ("TurnFailed", {"session_id": str(session_id), "run_id": str(turn.run_id),
                               "error": {"code": error.code, "message": error.message},
                               "usage": _usage_dict(total), "cost": cost, "member_errors": member_errors})
    return ("TurnCompleted", _completed_payload(session_id, turn.run_id, total, total_usd, total_zar,
                                                tool_errors=tracker.tool_errors, member_errors=member_errors))


async def stream_turn(turn: PreparedTurn,
                      wait_for_disconnect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    """SSE frames of a prepared turn. If the client goes away, the run still completes and is stored.

    ``wait_for_disconnect`` returns when the client has gone (servers do not always raise on a
    write to a closed connection, so the turn listens for the disconnect itself).
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    seq = 0

    def emit(name: str, data: dict) -> None:
        nonlocal seq
        seq += 1
        queue.put_nowait(sse.frame(seq, name, data))

    async def runner() -> None:
        try:
            await _run_and_store(turn, emit)
        finally:
            queue.put_nowait(None)

    async def watch() -> None:
        await wait_for_disconnect()
        if not task.done():
            turn.client_disconnected = True
            log.warning("client disconnected from turn %s; finishing the run", turn.run_id)
            queue.put_nowait(None)

    task = asyncio.create_task(runner(), name=f"turn-{turn.run_id}")
    watcher = asyncio.create_task(watch()) if wait_for_disconnect else None
    try:
        while True:
            chunk = await queue.get()
            if chunk is None:
                break
            yield chunk
    finally:
        if watcher is not None:
            watcher.cancel()
        if not task.done():
            turn.client_disconnected = True
            with anyio.CancelScope(shield=True):
                await task


def replay_frames(events: list[tuple[str, dict]]) -> list[bytes]:
    return [sse.frame(i + 1, name, data) for i, (name, data) in enumerate(events)]
