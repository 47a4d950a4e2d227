"""A prepared turn run: the conversation's events forwarded as SSE frames as they come, in a task
of its own so a client that disconnects does not stop it, then stored (``outcome.store_outcome``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from agno.run.agent import RunOutput
from agno.run.team import TeamRunOutput

from chatcore import db, observability
from chatcore.config import get_settings
from chatcore.observability import timed
from chatcore.store import turns as turn_rows
from chatcore.turns.begin import PreparedTurn
from chatcore.turns.claude import cut_calls
from chatcore.turns.outcome import TurnOutcome, store_outcome
from chatcore.turns.tracking import EventTracker, RunError
from chatcore.web import sse

log = logging.getLogger(__name__)
# Sent when nothing else was for HEARTBEAT_SECONDS: iOS drops a request idle for 60 s, API Gateway's
# streaming one idle for 5 minutes, and a model or a tool can be silent longer.
HEARTBEAT = b": ping\n\n"


def _store(turn: PreparedTurn, tracker: EventTracker) -> TurnOutcome:
    with timed("store"):
        return store_outcome(turn, tracker)


def _fail_run(turn: PreparedTurn, error: RunError) -> TurnOutcome:
    """The fallback when the outcome could not be stored: mark the run failed (best effort)."""
    outcome = TurnOutcome(session_id=turn.input.session_id, run_id=turn.run_id, status="failed", error=error)
    try:
        with db.connection() as conn, conn.transaction():
            turn_rows.finish_run(conn, **outcome.run_row())
    except Exception:  # noqa: BLE001 - the original error is what the caller reports
        log.exception("could not mark run %s failed", turn.run_id)
    outcome.usage = None  # what was billed could not be stored
    return outcome


async def run_and_store(turn: PreparedTurn, emit: Callable[[str, dict], None]) -> TurnOutcome:
    """Run the conversation, forward its events, store the outcome and emit the final event."""
    tracker = EventTracker(root_run_id=str(turn.run_id))
    started = time.perf_counter()
    cut = cut_calls.set([])  # model calls whose stream is cut short: billed, so stored (turns.claude)
    limit = get_settings().turn_timeout
    try:
        async with asyncio.timeout(limit):
            async for item in turn.conversation.stream(
                history=turn.history, message=turn.user_message, run_id=str(turn.run_id),
                session_id=str(turn.input.session_id), user_id=turn.input.sub,
            ):
                if isinstance(item, (RunOutput, TeamRunOutput)):
                    tracker.outputs.append(item)
                    continue
                tracker.see(item)
                emit(item.event, item.to_dict())
    except TimeoutError:
        log.warning("turn %s ran past TURN_TIMEOUT (%d s): ended", turn.run_id, limit)
        tracker.errors[tracker.root_run_id] = RunError(
            "turn-timeout", f"the turn ran past {limit} s (TURN_TIMEOUT) and was ended; what it billed is stored")
    except Exception as e:  # noqa: BLE001 - our own failure is stored and reported, never lost
        log.exception("turn %s failed", turn.run_id)
        tracker.errors[tracker.root_run_id] = RunError("internal-error", f"{e.__class__.__name__}: {e}")
    finally:
        tracker.model_calls.extend(cut_calls.get() or [])
        cut_calls.reset(cut)
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    try:
        outcome = await asyncio.to_thread(_store, turn, tracker)
    except Exception as e:  # noqa: BLE001
        log.exception("could not store turn %s", turn.run_id)
        outcome = await asyncio.to_thread(_fail_run, turn, RunError(
            "storage-error", f"could not store the turn: {e.__class__.__name__}"))
    outcome.duration_ms = elapsed_ms
    turn.outcome = outcome
    observability.record_turn(outcome.metrics())
    emit(*outcome.final_event())
    return outcome


async def stream_turn(turn: PreparedTurn,
                      wait_for_disconnect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    """SSE frames of a prepared turn. If the client goes away, the run still completes and is stored.

    ``wait_for_disconnect`` returns when the client has gone (servers do not always raise on a
    write to a closed connection, so the turn listens for the disconnect itself).
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    seq = 0
    heartbeat = get_settings().heartbeat_seconds

    def emit(name: str, data: dict) -> None:
        nonlocal seq
        seq += 1
        queue.put_nowait(sse.frame(seq, name, data))

    async def runner() -> None:
        try:
            await run_and_store(turn, emit)
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
            try:
                chunk = await asyncio.wait_for(queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield HEARTBEAT  # an SSE comment: the phone and API Gateway see a live connection
                continue
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


async def replay(outcome: TurnOutcome) -> AsyncIterator[bytes]:
    """The stream of a turn answered from what is stored: its final event alone."""
    yield sse.frame(1, *outcome.final_event())
