"""What a resumed stream costs the database while it waits (``turns.turn_events.follow``): one query
per read on a pooled connection that is returned before the wait, and reads that grow further apart
(up to FOLLOW_MAX_POLL_SECONDS) while the followed turn writes nothing, back to the batch interval as
soon as it does."""

from __future__ import annotations

import asyncio
import json

import pytest
from uuid6 import uuid7

from chatcore import db
from chatcore.store import turn_events as turn_event_rows
from chatcore.turns import turn_events


def test_the_wait_grows_from_the_batch_interval_to_its_most():
    waits, interval = [], 0.25
    for _ in range(6):
        waits.append(interval)
        interval = turn_events.next_poll(interval, base=0.25, most=1.0)
    assert waits == [0.25, 0.375, 0.5625, 0.84375, 1.0, 1.0]


@pytest.fixture()
def quiet_turn(user, db_conn):
    """A running turn that has written one event and then nothing (a long tool call)."""
    sid = user.new_session()
    run_id = uuid7()
    db_conn.execute("INSERT INTO runs (id, session_id, status) VALUES (%s, %s, 'running')", (run_id, sid))
    with db.connection() as conn:
        turn_event_rows.append_events(conn, run_id, [(1, "RunStarted", json.dumps({"event": "RunStarted"}))])
    return sid, run_id


def test_a_follower_of_a_quiet_turn_reads_less_and_less_and_holds_no_connection(quiet_turn, settings_env,
                                                                              monkeypatch):
    sid, run_id = quiet_turn
    settings_env.setenv("EVENT_BATCH_SECONDS", "0.05")
    settings_env.setenv("FOLLOW_MAX_POLL_SECONDS", "0.4")
    settings_env.setenv("HEARTBEAT_SECONDS", "60")
    reads, held = [], []
    real_read = turn_events._read

    def counted(*args):
        reads.append(1)
        return real_read(*args)

    monkeypatch.setattr(turn_events, "_read", counted)

    async def scenario() -> list[bytes]:
        frames: list[bytes] = []

        async def consume():
            async for frame in turn_events.follow(sid, run_id, after=0):
                frames.append(frame)

        task = asyncio.create_task(consume())
        for _ in range(30):  # 3 s of a quiet turn, the pool looked at between reads
            await asyncio.sleep(0.1)
            stats = db.pool().get_stats()
            held.append(stats.get("pool_size", 0) - stats.get("pool_available", 0))
        quiet_reads = len(reads)
        with db.connection() as conn:  # the turn speaks again, then ends
            turn_event_rows.append_events(conn, run_id, [
                (2, "RunContent", json.dumps({"event": "RunContent", "content": "back"})),
                (3, "TurnCompleted", json.dumps({"event": "TurnCompleted"}))])
        await asyncio.wait_for(task, timeout=10)
        return frames, quiet_reads

    frames, quiet_reads = asyncio.run(scenario())
    # at a fixed 0.05 s the quiet 3 s would have taken ~60 reads; growing to 0.4 s, about 12
    assert 6 <= quiet_reads <= 20, quiet_reads
    # a read holds a connection for a query's time: sampled between reads, none is held
    assert sum(1 for h in held if h > 0) <= 2, held
    assert [f.split(b"\n")[1] for f in frames] == [b"event: RunStarted", b"event: RunContent", b"event: TurnCompleted"]
