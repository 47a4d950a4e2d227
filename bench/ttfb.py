"""14. Time to first token (issue 28 item 6): how long the model's first content byte takes to reach
the phone through the SERVED API (``bin/serve``'s app: uvicorn, our routes, the SSE stream).

Each sample is the second turn of a fresh session (the first, untimed, gives it a history), with the
database behind the latency proxy (``bench.latency``) holding each of the server's answers 1 ms, as
an RDS database in the same region does. The stand-in notes when it writes its first text delta
(``first_text_at``, ``time.monotonic()``, in this process); the client notes when the first chunk
holding a ``RunContent`` frame with text arrives (the same clock). The figure is the difference:
what our server, agno and the anthropic SDK add between the model's first byte and the phone's. The
turn's text asks a plain question (one model call, a text answer); the image turn adds the ~200 KB
PNG. Beside it: the time from the request to the model's first byte (the turn's start: parsing, the
photo, ``begin_turn``, the model request), and the whole turn.
"""

from __future__ import annotations

import base64
import json
import time

from bench.harness import Harness, say
from bench.stats import median, ms, p90, table

FIRST = "Hello there, how are you today"
QUESTION = "Tell me something about the sea, please"
DELAY_S = 0.001  # the latency proxy's hold on each of the database's answers
TARGET_MS = 20.0  # a text turn (issue 28 item 6)


def _first_content(buffer: bytes) -> bool:
    """Whether ``buffer`` (the stream so far) holds a complete ``RunContent`` frame with text."""
    for frame in buffer.split(b"\n\n")[:-1]:
        if b"\nevent: RunContent\n" not in b"\n" + frame + b"\n":
            continue
        data = next((line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:")), b"")
        if isinstance(json.loads(data).get("content"), str) and json.loads(data)["content"]:
            return True
    return False


def timed_turn(h: Harness, session_id: str, message: str, png: bytes | None) -> dict:
    """One streamed turn through our API: the client's clock at its request, at the first content
    frame and at the end, and the stand-in's at its first text delta (all ``time.monotonic()``)."""
    body: dict = {"message": message}
    if png is not None:
        body["images"] = [{"data": base64.b64encode(png).decode(), "mime_type": "image/png"}]
    h.reset_standin()
    sent = time.monotonic()
    first = None
    buffer = b""
    with h.client.stream("POST", f"/sessions/{session_id}/turns", json=body) as r:
        for chunk in r.iter_raw():
            buffer += chunk
            if first is None and _first_content(buffer):
                first = time.monotonic()
    done = time.monotonic()
    if r.status_code != 200 or b"event: TurnCompleted" not in buffer or first is None:
        raise RuntimeError(f"our turn failed: HTTP {r.status_code} {buffer[-600:]!r}")
    model = [q["first_text_at"] for q in h.stack.standin.requests() if q.get("first_text_at") is not None]
    if not model:
        raise RuntimeError("the stand-in streamed no text")
    return {"ttfb_ms": (first - min(model)) * 1000, "model_first_ms": (min(model) - sent) * 1000,
            "client_first_ms": (first - sent) * 1000, "turn_ms": (done - sent) * 1000}


def run(h: Harness, repeat: int, png: bytes) -> dict:
    h.api
    results: dict = {"delay_ms": DELAY_S * 1000, "repeat": repeat}
    with h.ours_through_proxy():
        h.proxy.delay = DELAY_S
        try:
            for kind, image in (("text", None), ("image", png)):
                say(f"bench: time to first token ({kind}), {repeat} turns, database at {DELAY_S * 1000:.0f} ms")
                samples: list[dict] = []
                for i in range(repeat + 2):  # the first two warm the path (models, clients, the pool)
                    sid = h.new_session()
                    timed_turn(h, sid, FIRST, None)
                    sample = timed_turn(h, sid, QUESTION, image)
                    if i >= 2:
                        samples.append(sample)
                results[kind] = {k: [s[k] for s in samples] for k in samples[0]}
        finally:
            h.proxy.delay = 0.0
    return results


def report(results: dict) -> str:
    lines = ["", f"14. TIME TO FIRST TOKEN (the served API; database behind the latency proxy at "
                 f"{results['delay_ms']:.0f} ms a round trip; 2nd turn of a fresh session, a text answer; ms)"]
    rows = []
    for kind in ("text", "image"):
        r = results.get(kind)
        if not r:
            continue
        rows += [
            [f"{kind}: model's first text byte -> client's first content frame", ms(median(r["ttfb_ms"])),
             ms(p90(r["ttfb_ms"])), ms(min(r["ttfb_ms"])), len(r["ttfb_ms"])],
            [f"{kind}:   request -> model's first text byte", ms(median(r["model_first_ms"])),
             ms(p90(r["model_first_ms"])), ms(min(r["model_first_ms"])), ""],
            [f"{kind}:   request -> client's first content frame", ms(median(r["client_first_ms"])),
             ms(p90(r["client_first_ms"])), ms(min(r["client_first_ms"])), ""],
            [f"{kind}:   whole turn", ms(median(r["turn_ms"])), ms(p90(r["turn_ms"])), ms(min(r["turn_ms"])), ""],
        ]
    lines.append(table(["", "median", "p90", "min", "turns"], rows))
    return "\n".join(lines)
