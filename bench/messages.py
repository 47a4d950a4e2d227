"""8. Messages: ``GET /sessions/{id}/messages?limit=200`` of a session of 100 photo turns (200
messages, 100 photos in S3). Presigning is local (no S3 call per image), so a full page answers in
well under a second; the figure keeps that visible."""

from __future__ import annotations

import time

from bench.harness import Harness, say
from bench.stats import median, ms, p90, table


def run(h: Harness, repeat: int, png: bytes) -> dict:
    sid = h.new_session()
    h.ours_turn(sid, "What is in this photo?", png)
    say("bench: messages, copying the photo turn to 100 turns")
    h.ours_copy_turns(sid, 99)
    h.reset_standin()
    samples, photos = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = h.client.get(f"/sessions/{sid}/messages", params={"limit": 200})
        samples.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        items = r.json()["items"]
        photos = sum(len(m["images"]) for m in items)
    return {"ms": samples, "messages": len(items), "photos": photos}


def report(res: dict) -> str:
    rows = [[f"GET /sessions/{{id}}/messages?limit=200 ({res['messages']} messages, {res['photos']} photo URLs)",
             ms(median(res["ms"])), ms(p90(res["ms"]))]]
    return "\n".join(["", f"8. MESSAGES PAGE ({len(res['ms'])} reads, ms; URLs presigned locally, no S3 call)",
                      table(["", "median", "p90"], rows)])
