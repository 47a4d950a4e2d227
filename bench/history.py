"""3. History load: a 1,000-message session with 50 images read back as ``List[Message]``.

The same conversation on each side: 250 turns of four messages (user, assistant tool call, tool
result, assistant), every fifth turn (turns 2, 7, 12, ...) with the ~200 KB PNG. The first turns
of each side are real turns (our API; ``Agent(db=PostgresDb)``) and serve as templates; the 250
turns are copies of them with fresh ids, written through each side's own write path (our
``store.turns.insert_run``/``insert_messages``; Agno's ``PostgresDb.upsert_run``), so the stored
shapes are exactly what real turns store.

- ours: the turn's own read of the history (``store.turns.read_turn_start``, the BEGIN_TURN_READ
  statement, with its history window set to the whole session; or LOAD_HISTORY in older code)
  + ``Message.from_dict`` per message, on a connection made like the turn's (``db.connect``);
  images are S3 references in the rows.
- Agno: ``PostgresDb.get_session(...).get_messages()`` with its run-object cache emptied before
  each read (a session read by a sandbox that has not seen it; AgentOS/Lambda), images inline
  base64 (Agno's default, no media_storage). Also shown: Agno with its own ``S3MediaStorage``
  (images as references, like ours), and Agno's cached re-read (the same process reading the same
  session again).
Reads alternate between the sides.
"""

from __future__ import annotations

import copy
import time
import uuid

from uuid6 import uuid7

from bench.harness import AGENT, Harness, say
from bench.stats import kb, median, ms, p90, table

TURNS = 250
IMAGE_EVERY = 5  # turns 2, 7, 12, ... carry an image: 50 of 250
TEXT = "What is 12 * 7?"
IMAGE_TEXT = "What is 12 * 7? Here is a photo of the receipt."


def _is_image_turn(i: int) -> bool:
    return i % IMAGE_EVERY == 1


def build_ours(h: Harness, png: bytes) -> str:
    from chatcore.store import turns as turn_rows

    template_sid = h.new_session()
    h.ours_turn(template_sid, TEXT)
    h.ours_turn(template_sid, IMAGE_TEXT, png)
    conn = h.conn()
    rows = conn.execute("""
        SELECT run_id, role, agent_name, model_provider_slug, model_id, message_parts, input_tokens, output_tokens,
               cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, price_id, fx_rate_id, fx_rate,
               fx_rate_date
        FROM chat_events WHERE session_id = %s ORDER BY id""", (template_sid,)).fetchall()
    runs: dict = {}
    for r in rows:
        runs.setdefault(r["run_id"], []).append(r)
    text_rows, image_rows = list(runs.values())
    assert len(text_rows) == 4 and len(image_rows) == 4, (len(text_rows), len(image_rows))
    sid = h.new_session()
    with conn.transaction():
        for i in range(TURNS):
            run_id = uuid7()
            turn_rows.insert_run(conn, run_id=run_id, session_id=uuid.UUID(sid), agent_name=AGENT, status="completed")
            new_rows = []
            for r in image_rows if _is_image_turn(i) else text_rows:
                parts = copy.deepcopy(r["message_parts"])
                parts["id"] = str(uuid7())
                new_rows.append({**r, "id": uuid7(), "session_id": uuid.UUID(sid), "run_id": run_id,
                                 "message_parts": parts})
            turn_rows.insert_messages(conn, new_rows)
    return sid


def _agno_templates(h: Harness, agent, png: bytes) -> list[dict]:
    sid = str(uuid.uuid4())
    h.agno_turn(sid, TEXT, agent=agent)
    h.agno_turn(sid, IMAGE_TEXT, png, agent=agent)
    rows = h.conn().execute("SELECT run_data FROM ai.agno_runs WHERE session_id = %s ORDER BY run_index",
                            (sid,)).fetchall()
    return [r["run_data"] for r in rows]


def build_agno(h: Harness, png: bytes, agent=None) -> str:
    """A 250-run Agno session: run 0 a real turn (it creates the session row), 1..249 copies."""
    text_run, image_run = _agno_templates(h, agent, png)
    db = (agent or h.agno["agent"]).db
    sid = str(uuid.uuid4())
    h.agno_turn(sid, TEXT, agent=agent)
    now = int(time.time())
    for i in range(1, TURNS):
        run = copy.deepcopy(image_run if _is_image_turn(i) else text_run)
        run["run_id"] = str(uuid.uuid4())
        run["session_id"] = sid
        run["created_at"] = now + i
        for m in run.get("messages") or []:
            m["id"] = str(uuid.uuid4())
        db.upsert_run(run, session_id=sid, user_id="bench-user", run_index=i)
    return sid


def run(h: Harness, repeat: int, png: bytes) -> dict:
    from agno.db.base import SessionType
    from chatcore.media.agno_storage import media_storage
    from agno.models.message import Message

    say(f"bench: history load, building the {TURNS}-turn sessions")
    ours_sid = build_ours(h, png)
    agno_sid = build_agno(h, png)
    s3_agent = h.agno_agent_with_media_storage(media_storage())
    agno_s3_sid = build_agno(h, png, agent=s3_agent)
    db, db_s3 = h.agno["db"], s3_agent.db

    conn = h.conn()

    split: dict[str, list[float]] = {"query": [], "from_dict": []}

    def ours() -> tuple[float, list]:
        t = time.perf_counter()
        rows = h.history_dicts(ours_sid, TURNS, conn)  # query, transfer, jsonb -> dict
        t1 = time.perf_counter()
        history = []
        for row in rows:
            m = Message.from_dict(row)
            m.from_history = True
            history.append(m)
        t2 = time.perf_counter()
        split["query"].append((t1 - t) * 1000)
        split["from_dict"].append((t2 - t1) * 1000)
        return (t2 - t) * 1000, history

    def agno(database, sid: str, cached: bool = False) -> tuple[float, list]:
        if not cached:
            database._run_object_cache.drop_session(sid)
        t = time.perf_counter()
        session = database.get_session(sid, SessionType.AGENT)
        messages = session.get_messages()
        return (time.perf_counter() - t) * 1000, messages

    def count(messages: list) -> tuple[int, int]:
        non_system = [m for m in messages if m.role != "system"]
        return len(non_system), sum(len(m.images or []) for m in non_system)

    checks = {"ours": count(ours()[1]), "agno": count(agno(db, agno_sid)[1]),
              "agno_s3": count(agno(db_s3, agno_s3_sid)[1])}
    for side, (n, images) in checks.items():
        if (n, images) != (4 * TURNS, TURNS // IMAGE_EVERY):
            raise RuntimeError(f"history load: {side} read {n} messages with {images} images")
    say(f"bench: history load, {repeat} reads per side")
    samples: dict[str, list[float]] = {"ours": [], "agno": [], "agno_s3": [], "agno_cached": []}
    agno(db, agno_sid)  # warm the cache for the cached variant below... and Postgres' buffers
    for i in range(repeat):
        steps = [("ours", lambda: ours()[0]), ("agno", lambda: agno(db, agno_sid)[0]),
                 ("agno_s3", lambda: agno(db_s3, agno_s3_sid)[0])]
        k = i % len(steps)
        for name, step in steps[k:] + steps[:k]:
            samples[name].append(step())
        agno(db, agno_sid)  # fill the cache, then read again through it
        samples["agno_cached"].append(agno(db, agno_sid, cached=True)[0])
    stored = {
        "ours": conn.execute("SELECT sum(pg_column_size(ce.*)) AS n FROM chat_events ce WHERE session_id = %s",
                             (ours_sid,)).fetchone()["n"],
        "agno": conn.execute("SELECT sum(pg_column_size(r.*)) AS n FROM ai.agno_runs r WHERE session_id = %s",
                             (agno_sid,)).fetchone()["n"],
        "agno_s3": conn.execute("SELECT sum(pg_column_size(r.*)) AS n FROM ai.agno_runs r WHERE session_id = %s",
                                (agno_s3_sid,)).fetchone()["n"],
    }
    return {**samples, "split": split, "query_name": _query_name(), "messages": 4 * TURNS, "images": TURNS // IMAGE_EVERY, "stored": stored}


def _query_name() -> str:
    return f"BEGIN_TURN_READ (history_turns={TURNS})"


def report(res: dict) -> str:
    lines = ["", f"3. HISTORY LOAD ({res['messages']} messages, {res['images']} images, as List[Message]; "
             f"{len(res['ours'])} reads each, ms)"]
    rows = [
        ["ours: the turn's history read + Message.from_dict (images in S3)", ms(median(res["ours"])), ms(p90(res["ours"])),
         kb(res["stored"]["ours"]), "x1.0"],
        ["Agno PostgresDb, uncached (images inline, its default)", ms(median(res["agno"])), ms(p90(res["agno"])),
         kb(res["stored"]["agno"]), f"x{p90(res['agno']) / p90(res['ours']):.1f}"],
        ["Agno PostgresDb + S3MediaStorage, uncached", ms(median(res["agno_s3"])), ms(p90(res["agno_s3"])),
         kb(res["stored"]["agno_s3"]), f"x{p90(res['agno_s3']) / p90(res['ours']):.1f}"],
        ["Agno PostgresDb, cached re-read (inline)", ms(median(res["agno_cached"])), ms(p90(res["agno_cached"])),
         "", f"x{p90(res['agno_cached']) / p90(res['ours']):.1f}"],
    ]
    lines.append(table(["", "median", "p90", "rows read", "p90 / ours"], rows))
    sp = res["split"]
    lines.append(f"  ours split (medians): {res['query_name']} + transfer + jsonb decode {ms(median(sp['query']))} ms, "
                 f"Message.from_dict x{res['messages']} {ms(median(sp['from_dict']))} ms")
    return "\n".join(lines)
