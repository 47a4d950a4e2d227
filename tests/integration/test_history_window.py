"""The history a turn reads (``chatcore.store.history``, migration 0020): the turns its model input can
hold, found from each run's stored ``history_tokens``, instead of a fixed number of turns; the same
model input as reading every turn; the backfill of runs stored before it."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

from agno.media import Image
from agno.models.message import Message
from uuid6 import uuid7

from chatcore.money.budgets import month_bounds
from chatcore.store import history as history_rows, turns as turn_rows
from chatcore.store.history import UNBOUNDED_TOKENS, read_margin
from chatcore.turns.context import IMAGE_TOKENS, Budgets, build_context, message_tokens

MIGRATION = Path(__file__).resolve().parents[2] / "sql" / "migrations" / "0020_history_tokens.sql"


def add_turns(conn, session_id: str, sizes: list[int]) -> list[UUID]:
    """A completed turn per size (a user message of that many characters, a short answer), written
    through the store's functions and measured as FINISH_RUN measures; their run ids, oldest first."""
    runs, rows = [], []
    for n, size in enumerate(sizes):
        run_id = uuid7()
        turn_rows.insert_run(conn, run_id=run_id, session_id=UUID(session_id), agent_name="assistant",
                             status="completed")
        for message in (Message(id=str(uuid7()), role="user", content=f"turn {n} " + "x" * size),
                        Message(id=str(uuid7()), role="assistant", content=f"answer {n}")):
            rows.append({"id": UUID(message.id), "session_id": UUID(session_id), "run_id": run_id,
                         "role": message.role, "message_parts": message.to_dict()})
        runs.append(run_id)
    turn_rows.insert_messages(conn, rows)
    history_rows.measure_runs(conn, runs)
    return runs


def read_history(conn, user, session_id: str, history_tokens: int, history_turns: int = 100) -> list[dict]:
    start, end = month_bounds()
    with conn.transaction():
        row = turn_rows.read_turn_start(conn, sub=user.sub, session_id=UUID(session_id), client_turn_id=None,
                                        stale_seconds=960, history_turns=history_turns, month_start=start,
                                        month_end=end, history_tokens=history_tokens)
    return row["history"] or []


def messages(history: list[dict]) -> list[Message]:
    return [Message.from_dict(dict(m)) for m in history]


def test_a_long_session_reads_the_newest_turns_its_budget_can_hold_and_builds_the_same_input(user, db_conn):
    sid = user.new_session()
    sizes = [4000, 300, 9000, 50, 2500, 700, 6000, 1200, 400, 3000, 80, 5000, 1600, 900, 2200, 100]
    runs = add_turns(db_conn, sid, sizes)
    budget = 4000
    window = read_history(db_conn, user, sid, read_margin(budget))
    everything = read_history(db_conn, user, sid, UNBOUNDED_TOKENS)
    assert len(everything) == 2 * len(sizes)
    # newest first, while the newer turns hold at most the read margin: the first turn past it is read too
    stored = {r["id"]: r["history_tokens"] for r in db_conn.execute(
        "SELECT id, history_tokens FROM runs WHERE id = ANY(%s)", (runs,)).fetchall()}
    newer, expected = 0, 0
    for run_id in reversed(runs):
        if newer > read_margin(budget):
            break
        expected += 1
        newer += stored[run_id]
    assert 2 < expected < len(sizes)  # the test means something: some turns are left unread
    assert len(window) == 2 * expected
    assert window == everything[-len(window):]
    # what the model is sent is the same as with every turn read, and within the budget
    new = Message(id=str(uuid7()), role="user", content="the new message")
    budgets = Budgets(budget, 20, 24 * 1024 * 1024)
    small = build_context(messages(window), new, budgets, overhead_tokens=500)
    full = build_context(messages(everything), new, budgets, overhead_tokens=500)
    assert [m.id for m in small.history] == [m.id for m in full.history] and small.history
    assert (small.tokens, small.images, small.encoded_bytes) == (full.tokens, full.images, full.encoded_bytes)
    assert small.turns_left_out > 0 and full.turns_left_out > small.turns_left_out
    assert small.tokens <= budget
    # HISTORY_MAX_TURNS still caps the read
    assert len(read_history(db_conn, user, sid, UNBOUNDED_TOKENS, history_turns=3)) == 6


def test_a_short_session_reads_every_turn(user, db_conn):
    sid = user.new_session()
    add_turns(db_conn, sid, [100, 200, 300])
    assert len(read_history(db_conn, user, sid, read_margin(80_000))) == 6
    # a run without the stored count (written some other way) is read all the same
    db_conn.execute("UPDATE runs SET history_tokens = NULL WHERE session_id = %s", (sid,))
    assert len(read_history(db_conn, user, sid, read_margin(1000))) == 6


def test_the_stored_count_is_a_lower_bound_of_the_context_builders_estimate(db_conn):
    block = {"type": "text", "text": "déjà vu ✓ " * 40}
    samples = [
        Message(role="user", content="plain ascii " * 50),
        Message(role="user", content="ünïcödé 日本語 " * 30),
        Message(role="user", content="a photo", images=[Image(id="i1", content=b"\x89PNG" + b"0" * 100,
                                                              mime_type="image/png")]),
        Message(role="assistant", content="calling", tool_calls=[{"id": "t1", "type": "function", "function": {
            "name": "calculator", "arguments": json.dumps({"expression": "1.5e-05 * 7"})}}]),
        Message(role="assistant", content="with blocks", provider_data={"content_blocks": [block, {
            "type": "tool_use", "id": "t2", "name": "calculator", "input": {"x": 0.1, "y": [1, 2.50]}}]}),
        Message(role="tool", content="84", tool_call_id="t1"),
        Message(role="assistant", content="", provider_data={"content_blocks": [block]}),  # said nothing: skipped
    ]
    for message in samples:
        parts = message.to_dict()
        stored = db_conn.execute("SELECT message_history_tokens(%s::jsonb) AS n",
                                 (json.dumps(parts),)).fetchone()["n"]
        again = Message.from_dict(json.loads(json.dumps(parts)))  # as the turn reads it back
        estimate = message_tokens(again) - IMAGE_TOKENS * len(again.images or [])
        assert 0 <= stored <= estimate, (message.content, stored, estimate)
        if message.role == "user" and message.content.isascii():
            assert stored == estimate  # exact for plain text
    assert db_conn.execute("SELECT message_history_tokens(%s::jsonb) AS n",
                           (json.dumps(samples[-1].to_dict()),)).fetchone()["n"] == 0


def test_a_finished_turn_stores_its_count(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="What is 12 * 7?")
    run_id = events[-1]["data"]["run_id"]
    row = db_conn.execute("""SELECT r.history_tokens, (SELECT sum(message_history_tokens(ce.message_parts))
                                                       FROM chat_events ce WHERE ce.run_id = r.id) AS total
                             FROM runs r WHERE r.id = %s""", (run_id,)).fetchone()
    assert row["history_tokens"] > 0 and row["history_tokens"] == row["total"]


def test_the_migration_backfills_the_runs_stored_before_it(user, db_conn):
    sid = user.new_session()
    runs = add_turns(db_conn, sid, [120, 4000])
    running = uuid7()
    turn_rows.insert_run(db_conn, run_id=running, session_id=UUID(sid), agent_name="assistant")
    measured = {r["id"]: r["history_tokens"] for r in db_conn.execute(
        "SELECT id, history_tokens FROM runs WHERE session_id = %s", (sid,)).fetchall()}
    db_conn.execute("UPDATE runs SET history_tokens = NULL WHERE session_id = %s", (sid,))
    backfill = next(s for s in MIGRATION.read_text().split(";\n") if "UPDATE runs" in s)
    db_conn.execute(backfill)
    after = {r["id"]: r["history_tokens"] for r in db_conn.execute(
        "SELECT id, history_tokens FROM runs WHERE session_id = %s", (sid,)).fetchall()}
    assert after[runs[0]] == measured[runs[0]] and after[runs[1]] == measured[runs[1]] > 1000
    assert after[running] is None  # measured when it finishes
