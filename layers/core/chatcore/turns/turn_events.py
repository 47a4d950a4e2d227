"""A turn's events (the events of its stream, stored in ``turn_events``), durable: written in
batches while it runs (``TurnEventLog``), read back by any instance to resume or replay its stream
(``follow``). Without agno: the events function serves
``GET /sessions/{session_id}/turns/{run_id}/events`` with this module alone.

**Writing.** Every event gets the next sequence number (the SSE ``id``) and is sent to the live
client at once; the log writes what accumulated about every ``EVENT_BATCH_SECONDS`` (0.25 s) in one
round trip, which also reads whether the turn was asked to stop. The last events and the final one
are written in the transaction that stores the turn (``turns.finish``), so a short turn costs no
extra round trip. A batch that fails (the database restarting) stays queued and is written with the
next one, so the stored events are always a prefix of the stream: a reader never sees a gap.

**Reading.** ``follow`` sends the stored events after ``after`` (the client's ``Last-Event-ID``),
then new ones as they are written, until the final event (``TurnCompleted``, ``TurnFailed``,
``TurnCancelled``), with a heartbeat comment when nothing was sent for ``HEARTBEAT_SECONDS``.
After a stored final event nothing is ever sent: ``open_follow`` answers None for ``after`` at or
past it (the route's 204, which tells an ``EventSource`` to stop). Pruning keeps a turn's final
event, so a replay sends it as it was first sent. A run that ended without storing its final event
(the database was down at its end) gets the final event built from its run row; a run whose process
died (stale), ``TurnFailed`` ``abandoned``. That event is stored by the first reader that builds it
(one final event per turn: migration 0012), with the id after the last one the reader knows, so
every later replay sends it again, byte for byte, and a resume at or past it gets the 204.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import anyio
import psycopg
from psycopg_pool import PoolTimeout

from chatcore import db
from chatcore.config import get_settings
from chatcore.errors import NotFound
from chatcore.store import turn_events as turn_event_rows
from chatcore.turns.outcome import FINAL_EVENTS, PAUSED_EVENT, RunError, TurnOutcome
from chatcore.wire import sse

log = logging.getLogger(__name__)
TERMINAL_EVENTS = frozenset(FINAL_EVENTS.values())
# While a turn runs and no event is due, the log still reads the stop request this often.
CANCEL_POLL_SECONDS = 0.5
# A finished run whose final event is not stored this long after it finished never will be.
FINAL_EVENT_GRACE_SECONDS = 10.0
# A reader gives up (the client reconnects) when the database stays unreachable this long.
READ_OUTAGE_SECONDS = 30.0
_DB_DOWN = (psycopg.OperationalError, PoolTimeout)


class TurnEventLog:
    """Writes a running turn's events in batches; calls ``on_cancel`` once when a stop is requested."""

    def __init__(self, run_id: UUID, on_cancel: Callable[[], None], *, interval: float | None = None):
        self.run_id = run_id
        self.on_cancel = on_cancel
        self.interval = get_settings().event_batch_seconds if interval is None else interval
        self.pending: list[tuple[int, str, str]] = []
        self.cancel_requested = False
        self.batches = 0  # round trips that stored events (the benchmark reads it)
        self._closing = asyncio.Event()
        self._task: asyncio.Task | None = None

    def add(self, seq: int, event: str, payload: str) -> None:
        self.pending.append((seq, event, payload))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"events-{self.run_id}")

    async def _run(self) -> None:
        last_query = time.monotonic()
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._closing.wait(), timeout=self.interval)
            except TimeoutError:
                pass
            if self._closing.is_set():
                break
            if self.pending or time.monotonic() - last_query >= CANCEL_POLL_SECONDS:
                last_query = time.monotonic()
                await self.flush()

    async def flush(self) -> bool:
        """Write what is pending (or only read the stop request); False if the database failed."""
        batch = list(self.pending)
        try:
            cancel = await asyncio.to_thread(self._write, batch)
        except Exception:  # noqa: BLE001 - the batch stays queued; the live stream goes on
            log.warning("could not write %d event(s) of turn %s; kept for the next batch", len(batch),
                        self.run_id, exc_info=True)
            return False
        del self.pending[:len(batch)]
        if batch:
            self.batches += 1
        if cancel and not self.cancel_requested:
            self.cancel_requested = True
            self.on_cancel()
        return True

    def written(self, count: int) -> None:
        """The first ``count`` pending events were stored elsewhere (with the turn's outcome)."""
        del self.pending[:count]

    def _write(self, batch: list[tuple[int, str, str]]) -> bool:
        with db.connection() as conn:
            return turn_event_rows.append_events(conn, self.run_id, batch)

    async def pause(self) -> None:
        """Stop the batching (the turn is storing its outcome, with the events still pending)."""
        self._closing.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def close(self, attempts: int = 3) -> None:
        """Stop the batching and write what is left, a few times if need be (nothing, normally: the
        last events were stored with the turn's outcome)."""
        await self.pause()
        for attempt in range(attempts):
            if not self.pending or await self.flush():
                return
            await asyncio.sleep(0.5 * (attempt + 1))
        log.error("turn %s: %d event(s) could not be written; a resumed stream ends with the run's outcome",
                  self.run_id, len(self.pending))


def callers_turn(sub: str, session_id: UUID, run_id: UUID) -> dict:
    """The caller's turn, or ``NotFound`` (someone else's turn is not found either)."""
    with db.connection() as conn:
        row = turn_event_rows.find_turn(conn, sub, session_id, run_id)
    if row is None:
        raise NotFound("no such turn")
    return row


def final_event_of(session_id: UUID, run_id: UUID, row: dict) -> tuple[str, dict]:
    """The final event of a run from its row, when its own was never stored or was pruned."""
    if row["status"] == "running":  # stale: its process ended without finishing it
        outcome = TurnOutcome(session_id=session_id, run_id=run_id, status="failed", error=RunError(
            "abandoned", "the turn stopped without finishing (its process ended)"))
        outcome.replayed = True
    else:
        outcome = TurnOutcome.from_stored(session_id, run_id, row)
    return outcome.final_event()


def _read(run_id: UUID, after: int, stale_seconds: int) -> list[dict]:
    with db.connection() as conn:
        return turn_event_rows.read_events(conn, run_id, after=after, stale_seconds=stale_seconds)


async def _delivered(run_id: UUID) -> None:
    """Record that a client read the turn's final event (the chat function then sends no
    ``turn_finished`` push for it). Best effort: a failure costs at most one needless push."""
    def mark() -> None:
        with db.connection() as conn:
            turn_event_rows.mark_delivered(conn, run_id)

    try:
        with anyio.CancelScope(shield=True):  # the client leaving right after the final event must not undo it
            await asyncio.to_thread(mark)
    except Exception:  # noqa: BLE001
        log.warning("could not record that turn %s's final event was read", run_id, exc_info=True)


def _store_final(run_id: UUID, seq: int, event: str, payload_text: str) -> None:
    """Store a rebuilt final event (nothing when the turn has one by now: the first one stays)."""
    with db.connection() as conn:
        turn_event_rows.insert_events(conn, run_id, [(seq, event, payload_text)])


def _waits(row: dict) -> bool:
    """Whether the turn's last stored event is its ``TurnPaused`` and it still waits for the user's
    decision: its stream ends there for now (the decision's response streams the rest, with the next
    ids; so does this route once the continuation has begun)."""
    return row["last_event"] == PAUSED_EVENT and row["status"] == "paused"


def _ended_before(row: dict, after: int) -> bool:
    """Whether the turn's stored final event (or the pause it waits in) is at or before ``after``:
    nothing follows it."""
    return (row["last_event"] in TERMINAL_EVENTS or _waits(row)) and row["last_seq"] <= after


def next_poll(interval: float, *, base: float, most: float) -> float:
    """The wait before the next read of a followed turn that had nothing new: half as long again as
    the last, from ``base`` (the turn's batch interval) up to ``most``."""
    return min(max(interval, base) * 1.5, most)


async def follow(session_id: UUID, run_id: UUID, after: int = 0, *, poll: float | None = None) -> AsyncIterator[bytes]:
    """The turn's SSE frames after sequence number ``after``, stored then live, to its final event.

    Each read is one query on a pooled connection, returned before the wait: a follower holds no
    connection while it waits. The wait is the turn's batch interval while events come, and grows
    to ``FOLLOW_MAX_POLL_SECONDS`` while none does (a long tool call, a model thinking), so an idle
    follower costs about one query a second."""
    settings = get_settings()
    poll = settings.event_batch_seconds if poll is None else poll
    most = max(poll, settings.follow_max_poll_seconds)
    interval = poll
    heartbeat = settings.heartbeat_seconds
    last_sent = time.monotonic()
    down_since: float | None = None
    while True:
        try:
            rows = await asyncio.to_thread(_read, run_id, after, settings.stale_turn_seconds)
            down_since = None
        except _DB_DOWN:
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since > READ_OUTAGE_SECONDS:
                log.warning("database unreachable for %.0f s while following turn %s; ending", now - down_since, run_id)
                return
            rows = []
        if not rows and down_since is None:  # the run is gone (its session was deleted)
            return
        events = [r for r in rows if r["seq"] is not None]
        for r in events:
            yield sse.frame_of(r["seq"], r["event"], r["data"])
            after = r["seq"]
            last_sent = time.monotonic()
            if r["event"] in TERMINAL_EVENTS:
                await _delivered(run_id)  # the client asked for more: the final event was sent
                return
            if r["event"] == PAUSED_EVENT and r["seq"] == r["last_seq"] and r["status"] == "paused":
                return
        if events:
            interval = poll
            continue  # there may be more already stored
        if rows:
            run = rows[0]
            if run["last_event"] in TERMINAL_EVENTS or _waits(run):  # its final event is stored, at or before ``after``:
                return  # nothing follows it (no event is ever made up past it)
            finished_long_ago = run["status"] != "running" and (
                run["finished_seconds_ago"] is None or run["finished_seconds_ago"] > FINAL_EVENT_GRACE_SECONDS)
            if finished_long_ago or (run["status"] == "running" and run["stale"]):
                # it stored no final event and never will: the one rebuilt from its run is stored, then
                # read back and sent like any stored event (another reader's, if it stored one first)
                seq = max(run["last_seq"] or 0, after) + 1
                name, data = final_event_of(session_id, run_id, run)
                payload_text = sse.payload(name, data)
                try:
                    await asyncio.to_thread(_store_final, run_id, seq, name, payload_text)
                except _DB_DOWN:
                    yield sse.frame_of(seq, name, payload_text)
                    return
                continue
        if time.monotonic() - last_sent >= heartbeat:
            yield sse.HEARTBEAT
            last_sent = time.monotonic()
        await asyncio.sleep(interval)
        interval = next_poll(interval, base=poll, most=most)


async def open_follow(sub: str, session_id: UUID, run_id: UUID, after: int = 0) -> AsyncIterator[bytes] | None:
    """Check the turn is the caller's (``NotFound`` before any byte is sent) and follow it; None when
    nothing follows ``after`` (the turn's stored final event is at or before it)."""
    row = await asyncio.to_thread(callers_turn, sub, session_id, run_id)
    if _ended_before(row, after):
        return None
    return follow(session_id, run_id, after)
