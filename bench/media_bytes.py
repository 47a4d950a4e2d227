"""4. Bytes: what an image turn adds to the database, ours (image in S3, a reference in the row)
versus Agno's default (AgentOS over PostgresDb, no media_storage: the image inline as base64).

The turn is "What is in this photo?" with a PNG (one model call, two messages), at two image
sizes, and the same turn without an image for reference. Ours: N turns, each the first turn of a
fresh session (sessions created before measuring), so page-granular table growth is averaged over
many turns and no turn re-reads earlier photos. Agno: a few turns in one session (its rows are
hundreds of KB, so granularity does not matter). Per turn: the growth of the tables with their
indexes and TOAST (pg_total_relation_size: ours chat_events, runs, sessions; Agno agno_sessions,
agno_runs), and the bytes of the turn's own rows (pg_column_size).
"""

from __future__ import annotations

import uuid

from bench.harness import AGNO_TABLES, OUR_TABLES, Harness, say
from bench.stats import kb, table

MESSAGE = "What is in this photo?"
SIZES = ((260, 260), (580, 580))  # about 200 KB and 1 MB of incompressible PNG


def _ours(h: Harness, pngs: list[bytes | None]) -> dict:
    sessions = [h.new_session() for _ in pngs]
    before = h.relation_bytes(OUR_TABLES)
    for sid, png in zip(sessions, pngs):
        h.ours_turn(sid, MESSAGE, png)
        h.reset_standin()
    after = h.relation_bytes(OUR_TABLES)
    rows = sum(h.our_row_bytes(sid, 1, 1) for sid in sessions)
    return {"ours_total": (after - before) / len(pngs), "ours_rows": rows / len(pngs), "ours_turns": len(pngs)}


def _agno(h: Harness, pngs: list[bytes | None]) -> dict:
    sid = str(uuid.uuid4())
    h.agentos_turn(sid, "Hello")
    before = h.relation_bytes(AGNO_TABLES)
    for png in pngs:
        h.agentos_turn(sid, MESSAGE, png)
        h.reset_standin()
    after = h.relation_bytes(AGNO_TABLES)
    return {"agno_total": (after - before) / len(pngs),
            "agno_rows": h.agno_row_bytes(sid, 2, len(pngs) + 1) / len(pngs), "agno_turns": len(pngs)}


def run(h: Harness, turns: int, agno_turns: int) -> dict:
    from local.sample_images import noise_png

    say(f"bench: bytes, {turns} turns per kind (ours), {agno_turns} (Agno)")
    out = {"sizes": [], "text": {**_ours(h, [None] * turns), **_agno(h, [None] * agno_turns)}}
    for w, hgt in SIZES:
        pngs = [noise_png(w, hgt, seed=100 + i) for i in range(max(turns, agno_turns))]
        entry = {**_ours(h, pngs[:turns]), **_agno(h, pngs[:agno_turns]), "image_bytes": len(pngs[0])}
        out["sizes"].append(entry)
    return out


def report(res: dict) -> str:
    t = res["text"]
    lines = ["", f"4. BYTES PER TURN (ours: {t['ours_turns']} turns per kind, Agno: {t['agno_turns']}; "
             "tables = with indexes and TOAST, rows = the turn's own rows)"]
    rows = [["text turn, no image (reference)", kb(t["ours_total"]), kb(t["ours_rows"]), kb(t["agno_total"]),
             kb(t["agno_rows"])]]
    for s in res["sizes"]:
        rows.append([f"image turn, {kb(s['image_bytes'])} PNG", kb(s["ours_total"]), kb(s["ours_rows"]),
                     kb(s["agno_total"]), kb(s["agno_rows"])])
    lines.append(table(["", "ours tables", "ours rows", "Agno inline tables", "Agno inline rows"], rows))
    return "\n".join(lines)
