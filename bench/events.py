"""9. Events: what persisting a turn's events costs. A running turn writes its events to
``turn_events`` in batches, one round trip about every ``EVENT_BATCH_SECONDS`` (0.25 s), so another
instance can resume its stream; the last batch rides in the transaction that stores the turn.

Measured: the round trip of one batch by its size (through the pool, as the turn does it); a
streamed turn of about two seconds (200 chunks) with the batching on and, for reference, with
batches only at the end (``EVENT_BATCH_SECONDS`` very large): its wall time, how many round trips
its events took and what a resume of the finished turn costs (``GET .../events`` from the start).
"""

from __future__ import annotations

import os
import time

from bench.harness import Harness, say
from bench.stats import median, ms, p90, table

CHUNKS = 200
CHUNK_DELAY_MS = 10
PAYLOAD = '{"content":"' + "x" * 200 + '","event":"RunContent","run_id":"0193"}'


def _batch_round_trip(h: Harness, size: int, repeat: int) -> list[float]:
    from uuid6 import uuid7

    from chatcore import db
    from chatcore.store import turn_events

    sid = h.new_session()
    with db.connection() as conn:
        run_id = uuid7()
        conn.execute("INSERT INTO runs (id, session_id, status, finished_at) VALUES (%s, %s, 'completed', now())",
                     (run_id, sid))
    samples, seq = [], 0
    for _ in range(repeat):
        batch = [(seq + i + 1, "RunContent", PAYLOAD) for i in range(size)]
        seq += size
        t = time.perf_counter()
        with db.connection() as conn:
            turn_events.append_events(conn, run_id, batch)
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def _streamed_turn(h: Harness, batch_seconds: str) -> dict:
    from chatcore.config import get_settings

    os.environ["EVENT_BATCH_SECONDS"] = batch_seconds
    get_settings.cache_clear()
    try:
        text = " ".join(f"w{i} x{i} y{i}" for i in range(CHUNKS))  # 3 words a chunk: CHUNKS chunks
        h.stack.standin.script([{"text": text, "delay_ms": CHUNK_DELAY_MS}])
        sid = h.new_session()
        t = time.perf_counter()
        with h.client.stream("POST", f"/sessions/{sid}/turns", json={"message": "stream"}) as r:
            run_id = r.headers["x-run-id"]
            data = r.read()
        wall = (time.perf_counter() - t) * 1000
        if b"event: TurnCompleted" not in data:
            raise RuntimeError(f"the streamed turn failed: {data[-400:]!r}")
        with h.conn().cursor() as cur:
            cur.execute("SELECT count(*) AS events, count(DISTINCT date_trunc('milliseconds', created_at)) AS batches "
                        "FROM turn_events WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
            events, batches = row.values() if isinstance(row, dict) else row
        t = time.perf_counter()
        replay = h.client.get(f"/sessions/{sid}/turns/{run_id}/events")
        replay_ms = (time.perf_counter() - t) * 1000
        if replay.content != data.replace(b": ping\n\n", b""):
            raise RuntimeError("the replay differs from the live stream")
        return {"wall_ms": wall, "events": events, "batches": batches, "replay_ms": replay_ms,
                "bytes": len(data)}
    finally:
        os.environ.pop("EVENT_BATCH_SECONDS", None)
        get_settings.cache_clear()


def _follower_of_a_quiet_turn(h: Harness, seconds: float) -> dict:
    """A resumed stream of a running turn that writes nothing for ``seconds`` (a long tool call, a
    model thinking): how often it reads, and what a read costs the database."""
    import asyncio

    from uuid6 import uuid7

    from chatcore import db
    from chatcore.turns import turn_events

    sid = h.new_session()
    run_id = uuid7()
    with db.connection() as conn:
        conn.execute("INSERT INTO runs (id, session_id, status) VALUES (%s, %s, 'running')", (run_id, sid))
    reads: list[float] = []
    real_read = turn_events._read

    def timed(*args):
        t = time.perf_counter()
        try:
            return real_read(*args)
        finally:
            reads.append((time.perf_counter() - t) * 1000)

    async def follow_for() -> None:
        async def consume():
            async for _ in turn_events.follow(sid, run_id):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(seconds)
        task.cancel()

    turn_events._read = timed
    try:
        asyncio.run(follow_for())
    finally:
        turn_events._read = real_read
        with db.connection() as conn:
            conn.execute("UPDATE runs SET status = 'failed', finished_at = now() WHERE id = %s", (run_id,))
    return {"seconds": seconds, "reads": len(reads), "read_ms": reads}


def run(h: Harness, repeat: int) -> dict:
    say("bench: events, batch round trips")
    h.api
    sizes = {size: _batch_round_trip(h, size, repeat * 3) for size in (1, 10, 50)}
    say("bench: events, streamed turns with and without batching")
    _streamed_turn(h, "0.25")  # warm-up (the agent, the connections), not counted
    batched, at_end = [], []
    for _ in range(max(3, repeat // 3)):  # alternated, so drift and noise fall on both alike
        batched.append(_streamed_turn(h, "0.25"))
        at_end.append(_streamed_turn(h, "3600"))
    h.reset_standin()
    say("bench: events, a follower of a quiet turn")
    follower = _follower_of_a_quiet_turn(h, 20.0)
    return {"sizes": sizes, "batched": batched, "at_end": at_end, "follower": follower}


def report(res: dict) -> str:
    rows = [[f"one batch of {size} event(s) ({len(PAYLOAD)} B each)", ms(median(s)), ms(p90(s))]
            for size, s in res["sizes"].items()]
    lines = ["", f"9. EVENTS: persisting a turn's events for resumes (ms; {len(next(iter(res['sizes'].values())))} "
             "batches each, through the pool)", table(["", "median", "p90"], rows)]
    turn_rows = []
    for label, runs in (("batches every 0.25 s (default)", res["batched"]),
                        ("one batch at the end (EVENT_BATCH_SECONDS=3600)", res["at_end"])):
        turn_rows.append([label, ms(median([r["wall_ms"] for r in runs])),
                          str(runs[0]["events"]), f"{median([r['batches'] for r in runs]):.0f}",
                          ms(median([r["replay_ms"] for r in runs]))])
    lines += ["", f"  a streamed turn of {CHUNKS} chunks, {CHUNK_DELAY_MS} ms apart (wall ms; events stored; "
                  "their write round trips; replaying it whole)",
              table(["", "turn", "events", "round trips", "replay"], turn_rows)]
    f = res.get("follower")
    if f:
        per_second = f["reads"] / f["seconds"]
        read_ms = median(f["read_ms"])
        lines += ["", f"  a resumed stream of a turn quiet for {f['seconds']:.0f} s (reads 0.25 s apart, growing to "
                      "FOLLOW_MAX_POLL_SECONDS=1 s; a pooled connection per read, none held between)",
                  table(["", "reads", "reads/s", "read ms (median)", "read ms (p90)", "followers per DB core (at most)"],
                        [["follower", str(f["reads"]), f"{per_second:.2f}", ms(read_ms), ms(p90(f["read_ms"])),
                          f"{1000 / (per_second * read_ms):,.0f}"]])]
    return "\n".join(lines)
