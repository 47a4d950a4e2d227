"""A prepared turn run: agno's events forwarded as the turn's events (SSE frames) as they come,
in a task of its own so a client that disconnects does not stop it, written in batches for any
instance to resume (``turns.turn_events``), then stored (``finish.store_outcome``). A stop request,
read with those batches, ends the model call through agno's run cancellation, and the turn is
stored ``cancelled``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import anyio
from agno.run.agent import RunOutput
from agno.run.team import TeamRunOutput

from chatcore import db, observability
from chatcore.config import get_settings
from chatcore.money.budgets import claim_warnings
from chatcore.observability import timed
from chatcore.store import turns as turn_rows, usage as usage_rows
from chatcore.turns.begin import begin_turn
from chatcore.turns.claude import CallLog, cut_calls
from chatcore.turns.finish import add_prior, kept_to_write, store_outcome
from chatcore.turns.memory import MEMORY_EVENT, memory_scope
from chatcore.turns.outcome import RunError, TurnOutcome
from chatcore.turns.thinking import ThinkingStream
from chatcore.turns.tracking import RunTracker
from chatcore.turns.turn import KnownTurn, PreparedTurn, TurnInput
from chatcore.turns.turn_events import TurnEventLog, follow
from chatcore.wire import sse

log = logging.getLogger(__name__)


def _store(turn: PreparedTurn, tracker: RunTracker, seal=None) -> TurnOutcome:
    with timed("store"):
        return store_outcome(turn, tracker, seal)


def _fail_run(turn: PreparedTurn, error: RunError, warned: list[int] | None = None) -> TurnOutcome:
    """The fallback when the outcome could not be stored: mark the run failed (best effort), and
    release the budget warnings (``warned``: their percents) it claimed for its stored events, unless
    its record is kept to be written later (with those events)."""
    outcome = TurnOutcome(session_id=turn.input.session_id, run_id=turn.run_id, status="failed", error=error)
    if turn.continuation is not None:  # a continued run keeps what its stretch before the pause cost
        add_prior(outcome, turn.continuation.prior.get(str(turn.run_id)))
    try:
        with db.connection() as conn, conn.transaction():
            if warned and not kept_to_write(turn.run_id):
                usage_rows.release_budget_warnings(conn, turn.run_id, warned)
            turn_rows.finish_run(conn, **outcome.run_row())
    except Exception:  # noqa: BLE001 - the original error is what the caller reports
        log.exception("could not mark run %s failed", turn.run_id)
    outcome.usage = None  # what was billed could not be stored
    return outcome


# A turn's events that come before its model has answered anything.
_BEFORE_THE_MODEL = frozenset({"RunStarted", "TeamRunStarted", "ModelRequestStarted", "TeamModelRequestStarted"})


async def _compaction(turn: PreparedTurn, task: asyncio.Task):
    """The compaction the turn ran beside its model call (None when it failed: the turn is stored all
    the same, and the next turn tries again). Shielded: a turn ended early still waits for what the
    summariser billed. Bounded by the summariser's own timeouts (MODEL_IDLE_TIMEOUT, retries)."""
    try:
        return await asyncio.shield(task)
    except Exception:  # noqa: BLE001 - compact() catches the model's failures; this is anything else
        log.exception("the compaction of turn %s failed", turn.run_id)
        return None


class _Stop:
    """How a turn is stopped: agno's run cancellation first; the conversation's task is ended
    ``CANCEL_GRACE_SECONDS`` later if it has not stopped by then (a silent model or tool)."""

    def __init__(self, turn: PreparedTurn, tracker: RunTracker):
        self.turn, self.tracker = turn, tracker
        self.deadline: asyncio.Timeout | None = None
        self.cancelling: asyncio.Task | None = None  # held: the loop keeps only a weak reference

    def __call__(self) -> None:
        turn = self.turn
        if self.tracker.stopped:
            return
        self.tracker.stopped = True
        log.info("turn %s: stop requested", turn.run_id)
        self.cancelling = asyncio.create_task(turn.conversation.cancel(str(turn.run_id)))
        if self.deadline is not None:
            loop = asyncio.get_running_loop()
            due = loop.time() + get_settings().cancel_grace_seconds
            if self.deadline.when() is None or self.deadline.when() > due:
                self.deadline.reschedule(due)


class _Stream:
    """A live turn's events: numbered (the SSE ``id``), queued for the client and written to the
    turn's event log (``turns.turn_events``)."""

    def __init__(self, turn: PreparedTurn, stop: _Stop):
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        # a continued run's events follow those of its stretch before the pause
        self.seq = turn.continuation.last_seq if turn.continuation is not None else 0
        self.log = TurnEventLog(turn.run_id, on_cancel=stop)
        self.answer: list[str] = []  # the start of the answer (a push's preview, when the user opts in)

    def next_id(self) -> int:
        self.seq += 1
        return self.seq

    def emit(self, name: str, data: dict) -> None:
        if (name == "TeamRunContent" or (name == "RunContent" and not data.get("parent_run_id"))) \
                and isinstance(data.get("content"), str) and sum(map(len, self.answer)) < 400:
            self.answer.append(data["content"])
        self.send(self.next_id(), name, sse.payload(name, data))

    def send(self, seq: int, name: str, payload: str, *, stored: bool = False) -> None:
        if not stored:
            self.log.add(seq, name, payload)
        self.queue.put_nowait(sse.frame_of(seq, name, payload))


async def run_and_store(turn: PreparedTurn, stream: _Stream, stop: _Stop) -> TurnOutcome:
    """Run the conversation, forward agno's events as the turn's, store the outcome and send the final event."""
    tracker = stop.tracker
    started = time.perf_counter()
    # model calls whose stream is cut short or aborted: billed, so stored; the web search location (turns.claude)
    calls = CallLog(search_location=turn.input.location)
    cut = cut_calls.set(calls)
    memory = turn.memory
    scoped = memory_scope.set(memory)  # what the memory tools act for (turns.memory)
    limit = get_settings().turn_timeout
    for data in turn.continuation.decided if turn.continuation is not None else ():
        stream.emit("ToolCallCompleted", data)  # the decided calls (turns.approvals), before the model's answer
    thinking = ThinkingStream(redacted=calls.redacted)
    # the compaction this turn starts runs beside its answer, started once the model's first event is
    # out, so not even its start competes with the first byte (turns.compaction)
    compacting: asyncio.Task | None = None

    def start_compaction() -> None:
        nonlocal compacting
        if compacting is None and turn.compacting is not None:
            compacting = asyncio.create_task(asyncio.to_thread(turn.compacting.run))
    try:
        async with asyncio.timeout(limit) as deadline:
            stop.deadline = deadline
            if turn.continuation is not None:  # a paused run, after the user's decision (turns.approvals)
                items = turn.conversation.resume(
                    history=turn.history, run_id=str(turn.run_id), session_id=str(turn.input.session_id),
                    user_id=turn.input.sub, member=turn.continuation.member)
            else:
                items = turn.conversation.stream(
                    history=turn.history, message=turn.user_message, run_id=str(turn.run_id),
                    session_id=str(turn.input.session_id), user_id=turn.input.sub,
                    recall=None if memory is None else memory.recall)
            async for item in items:
                if isinstance(item, (RunOutput, TeamRunOutput)):
                    tracker.outputs.append(item)
                    continue
                tracker.see(item)
                if tracker.forwarded(item):
                    for name, data in thinking.events(item):  # the thinking as our events (turns.thinking)
                        stream.emit(name, data)
                    if getattr(item, "event", "") not in _BEFORE_THE_MODEL:
                        start_compaction()
                for change in memory.take_events() if memory is not None else ():
                    stream.emit(MEMORY_EVENT, change)  # right after the tool call that made it
    except TimeoutError:
        if tracker.stopped:
            log.info("turn %s did not stop within the grace period: ended", turn.run_id)
        else:
            log.warning("turn %s ran past TURN_TIMEOUT (%d s): ended", turn.run_id, limit)
            tracker.errors[tracker.root_run_id] = RunError(
                "turn-timeout", f"the turn ran past {limit} s (TURN_TIMEOUT) and was ended; what it billed is stored")
    except Exception as e:  # noqa: BLE001 - our own failure is stored and reported, never lost
        log.exception("turn %s failed", turn.run_id)
        tracker.errors[tracker.root_run_id] = RunError("internal-error", f"{e.__class__.__name__}: {e}")
    finally:
        tracker.cut_calls.extend(calls.close_open())  # streams aborted but not yet closed are recorded now
        cut_calls.reset(cut)
        memory_scope.reset(scoped)
    for change in memory.take_events() if memory is not None else ():  # a change the stream's end cut off
        stream.emit(MEMORY_EVENT, change)
    if tracker.stopped:
        tracker.errors.pop(tracker.root_run_id, None)  # a stopped turn is cancelled, not failed
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    start_compaction()  # a turn that ended before its model said anything still compacts
    if compacting is not None:  # stored with the turn: it was billed, whatever became of the turn
        turn.compaction = await _compaction(turn, compacting)

    # The events not yet written and the final event go in the transaction that stores the turn.
    await stream.log.pause()
    last = list(stream.log.pending)
    sealed: list[str] = []
    warnings: list[tuple[int, str, str]] = []
    warned: list[int] = []  # the percents of the warnings seal claimed
    base = stream.seq  # the ids seal takes are given back when the turn could not be stored

    def seal(total: TurnOutcome) -> list[tuple[int, str, str]]:
        total.duration_ms = elapsed_ms
        claimed = _budget_warnings(turn, total)
        warned[:] = [data["percent"] for data in claimed]
        warnings[:] = [(stream.next_id(), BUDGET_WARNING, sse.payload(BUDGET_WARNING, data)) for data in claimed]
        name, data = total.final_event()
        sealed[:] = [name, sse.payload(name, data)]
        return [*last, *warnings, (stream.next_id(), *sealed)]

    try:
        outcome = await asyncio.to_thread(_store, turn, tracker, seal)
        stream.log.written(len(last))
    except Exception as e:  # noqa: BLE001
        log.exception("could not store turn %s", turn.run_id)
        outcome = await asyncio.to_thread(_fail_run, turn, RunError(
            "storage-error", f"could not store the turn: {e.__class__.__name__}"), warned)
        sealed.clear()
        stream.seq = base
    outcome.duration_ms = elapsed_ms
    turn.outcome = outcome
    observability.record_turn(outcome.metrics())
    if outcome.spooled or sealed:
        for warning in warnings:
            stream.send(*warning, stored=True)
    if outcome.spooled:  # its events, this one as stored (without "pending"), are in the spooled record
        name, data = outcome.final_event()
        stream.send(stream.seq, name, sse.payload(name, data), stored=True)
    elif sealed:
        stream.send(stream.seq, *sealed, stored=True)
    else:
        name, data = outcome.final_event()
        stream.send(stream.next_id(), name, sse.payload(name, data))
    return outcome


BUDGET_WARNING = "BudgetWarning"


def _budget_warnings(turn: PreparedTurn, total: TurnOutcome) -> list[dict]:
    """The BudgetWarning events this turn's cost crossed (claimed once a month each; a short statement
    before the turn's last transaction, only once the spend nears the budget). Never raises: a
    warning not claimed now is claimed by the next turn."""
    budget = turn.budget
    # a continuation's run holds its stretch before the pause too, already stored and in the spend
    cost = total.segment[2] if total.segment is not None else total.cost_zar
    if budget is None or not cost:
        return []
    try:
        with db.connection() as conn:
            claimed = claim_warnings(conn, user_id=budget.user_id, budget=budget.budget_zar,
                                     spent_before=budget.spent_zar, cost=cost, run_id=turn.run_id)
    except Exception:  # noqa: BLE001 - see docstring
        log.warning("could not claim the budget warnings of turn %s", turn.run_id, exc_info=True)
        return []
    ids = {"session_id": str(turn.input.session_id), "run_id": str(turn.run_id)}
    return [{"event": BUDGET_WARNING, **ids, **warning} for warning in claimed]


async def stream_turn(turn: PreparedTurn,
                      wait_for_disconnect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    """SSE frames of a prepared turn. If the client goes away, the run still completes and is stored.

    Every event is also written to the turn's event log (``turns.turn_events``), whose batches read a
    stop request. ``wait_for_disconnect`` returns when the client has gone (servers do not always
    raise on a write to a closed connection, so the turn listens for the disconnect itself).
    """
    heartbeat = get_settings().heartbeat_seconds
    stop = _Stop(turn, RunTracker(root_run_id=str(turn.run_id)))
    stream = _Stream(turn, stop)
    queue = stream.queue

    async def runner() -> None:
        stream.log.start()
        try:
            await run_and_store(turn, stream, stop)
        finally:
            queue.put_nowait(None)
            await stream.log.close()

    async def watch() -> None:
        await wait_for_disconnect()
        if not task.done():
            turn.client_disconnected = True
            log.warning("client disconnected from turn %s; finishing the run", turn.run_id)
            queue.put_nowait(None)

    task = asyncio.create_task(runner(), name=f"turn-{turn.run_id}")
    watcher = asyncio.create_task(watch()) if wait_for_disconnect else None
    sent = 0  # the id of the last event the client was sent (its write returned)
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield sse.HEARTBEAT  # an SSE comment: the phone and API Gateway see a live connection
                continue
            if chunk is None:
                break
            # the frames already queued behind it go in the same write (one send, one read for the
            # phone); nothing waits for more: the first frame of a burst is never held back
            chunks, ended = [chunk], False
            while not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    ended = True
                    break
                chunks.append(more)
            yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
            sent = max(map(_event_id, chunks)) or sent
            if ended:
                break
    finally:
        if watcher is not None:
            watcher.cancel()
        with anyio.CancelScope(shield=True):
            if not task.done():
                turn.client_disconnected = True
                await task
            # after the final event was sent (or the client was gone): the pushes it calls for
            await _notify(turn, stream, sent)


def _event_id(chunk: bytes) -> int:
    """The id of an SSE frame (``id: N`` first), 0 for a heartbeat."""
    if not chunk.startswith(b"id:"):
        return 0
    return int(chunk[3:chunk.index(b"\n")].strip())


async def _notify(turn: PreparedTurn, stream: _Stream, sent: int) -> None:
    """The pushes of a stored turn (``chatcore.notify.pushes``); never raises, never changes the turn."""
    outcome = turn.outcome
    if outcome is None:
        return
    from chatcore.notify import pushes

    finished = pushes.FinishedTurn(
        session_id=turn.input.session_id, run_id=turn.run_id, status=outcome.status, final_event_id=stream.seq,
        last_sent_id=sent, answer="".join(stream.answer), pending=list(getattr(outcome, "pending", None) or []),
        user_id=turn.owner, has_devices=turn.has_devices)
    if finished.has_devices is False:
        return  # no device when the turn began: nothing to push, nothing to read
    try:
        await asyncio.to_thread(pushes.after_turn, finished)
    except Exception:  # noqa: BLE001 - after_turn never raises; this is the belt to its braces
        log.warning("the pushes of turn %s failed", turn.run_id, exc_info=True)


@dataclass
class TurnStream:
    """A turn's SSE stream: a new turn's, live; or a retried ``client_turn_id``'s, followed from its
    stored events after ``Last-Event-ID``."""

    session_id: UUID
    run_id: UUID
    frames: AsyncIterator[bytes]
    retried: bool = False


async def open_turn(turn: TurnInput, wait_for_disconnect: Callable[[], Awaitable[None]] | None = None, *,
                    last_event_id: int = 0) -> TurnStream:
    """Begin ``turn`` (the problem, 4xx/503, is raised before any byte is sent) and return its stream."""
    prepared = await asyncio.to_thread(begin_turn, turn)
    if isinstance(prepared, KnownTurn):
        return TurnStream(prepared.session_id, prepared.run_id, follow(prepared.session_id, prepared.run_id,
                                                                        last_event_id), retried=True)
    return TurnStream(turn.session_id, prepared.run_id, stream_turn(prepared, wait_for_disconnect))
