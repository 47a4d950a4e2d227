"""7. Conversation: four chats a phone app really has, through our API and through Agno's defaults,
against the stand-in that refuses what the Messages API refuses and bills prompt caching as it does.

- a 40-turn chat whose first turn holds a fact;
- a phone photo a turn for 20 turns (4032x3024 JPEG of ~3.5 MB with GPS EXIF);
- 10 turns of 20-photo albums (7 turns of small photos, then 2500 px ones);
- 20 turns of long notes (30,000 characters each) past the context budget, a fact in the first.

Per chat and side: failed turns, whether the first turn's fact is in the model's input at the last
turn, the input tokens billed at the full price, written to the cache and read from it (summed over
every model request the stand-in answered), and the input cost in rands: as billed (cache writes
1.25x, reads 0.1x the input price of claude-sonnet-5-5, at R18.00 per dollar), against the same
requests without caching (every input token at the full price), and against Agno's defaults
(``Agent(db=PostgresDb, add_history_to_context=True)``: the last 3 runs, photos inline, no caching).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bench.harness import AGENT, Harness, say
from bench.stats import table

FACT = "Remember this: my locker code is 7319."
RATE = Decimal("18.00")
MODEL = "claude-sonnet-5-5"


def _phone_photos(n: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    y = np.linspace(0, 255, 3024)[:, None]
    x = np.linspace(0, 255, 4032)[None, :]
    base = np.stack([(x + y) / 2, np.broadcast_to(x, (3024, 4032)), np.broadcast_to(y, (3024, 4032))], -1)
    pixels = np.clip(base + rng.normal(0, 14, base.shape), 0, 255).astype("uint8")
    exif = Image.Exif()
    exif[0x0112] = 6
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", (33.0, 55.0, 12.0)
    photos = []
    for i in range(n):
        pixels[:40, i * 100:(i + 1) * 100] = (255 - 10 * i, 10 * i, 128)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=85, exif=exif.tobytes())
        photos.append(out.getvalue())
    return photos


def _flat_jpeg(side: int, shade: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side * 3 // 4), (shade, 255 - shade, 90)).save(out, "JPEG", quality=80)
    return out.getvalue()


def chats() -> dict[str, list[tuple[str, list[bytes]]]]:
    """Each chat as its turns: (message, photos)."""
    say("bench: conversation, making the photos")
    photos = _phone_photos(20)
    note = ("The quick brown fox jumps over the lazy dog. " * 700)[:30_000]
    return {
        "40-turn chat, a fact in turn 1": [(FACT, [])] + [
            (f"Turn {i}: tell me one more thing about the tea trade of the year {1700 + i}.", [])
            for i in range(2, 41)],
        "a phone photo a turn, 20 turns": [(f"Photo {i + 1}: what do you see?", [p]) for i, p in enumerate(photos)],
        "20-photo albums, 10 turns": [(f"Album {t + 1}", [_flat_jpeg(300 if t < 7 else 2500, (t * 20 + i) % 256)
                                                        for i in range(20)]) for t in range(10)],
        "long notes past the budget, 20 turns": [(f"{FACT} Note 1. {note}", [])] + [
            (f"Note {i}. {note}", []) for i in range(2, 21)],
    }


def _ours(h: Harness, turns: list[tuple[str, list[bytes]]]) -> dict[str, Any]:
    sid = h.new_session()
    failed = 0
    for message, photos in turns:
        body: dict[str, Any] = {"message": message}
        if photos:
            body["images"] = [{"data": base64.b64encode(p).decode()} for p in photos]
        with h.client.stream("POST", f"/sessions/{sid}/turns", json=body) as r:
            data = r.read()
        if r.status_code != 200 or b"event: TurnCompleted" not in data:
            failed += 1
    return {"failed": failed}


def _agno_agent():
    """Agno's defaults: PostgresDb, the last 3 runs as history, photos inline, no prompt caching."""
    from agno.agent import Agent
    from agno.models.anthropic import Claude

    from chatcore.catalog.agents import agent_specs
    from chatcore.config import get_settings

    spec = agent_specs()[AGENT]
    settings = get_settings()
    model = Claude(id=spec.model_id, api_key="standin", max_tokens=4096,
                   client_params={"base_url": settings.anthropic_base_url})
    return spec, model, Agent


def _agno(h: Harness, turns: list[tuple[str, list[bytes]]]) -> dict[str, Any]:
    from agno.media import Image

    spec, model, Agent = _agno_agent()
    agent = Agent(id=f"{AGENT}-defaults", name=AGENT, description=spec.description, model=model,
                  instructions=list(spec.instructions), tools=list(spec.tools), db=h.agno["db"],
                  add_history_to_context=True, telemetry=False, markdown=False)
    sid = str(uuid.uuid4())
    failed = 0
    for message, photos in turns:
        images = [Image(content=p, mime_type="image/jpeg") for p in photos] or None

        async def go() -> bool:
            last = None
            async for ev in agent.arun(message, images=images, session_id=sid, user_id="bench-user", stream=True,
                                       stream_events=True):
                last = ev
            return getattr(last, "event", None) == "RunCompleted"

        try:
            ok = h.run(go())
        except Exception:  # noqa: BLE001 - a refused request is a failed turn here
            ok = False
        failed += 0 if ok else 1
    return {"failed": failed}


def billing(requests: list[dict], *, with_output: bool = False) -> dict[str, Any]:
    """What the answered requests cost as input (and, ``with_output``, as output too): tokens by
    kind, and rands with and without caching."""
    from chatcore.money.prices import TokenUsage, default_price_book

    book = default_price_book()
    now = datetime.now(UTC)
    full = write = read = 0
    usd = usd_uncached = Decimal(0)
    for r in requests:
        usage = (r.get("response") or {}).get("usage")
        if not usage:
            continue
        u_in, u_read = usage["input_tokens"], usage["cache_read_input_tokens"]
        u_write = usage["cache_creation_input_tokens"]
        u_out = usage["output_tokens"] if with_output else 0
        one_hour = (usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0)
        full, write, read = full + u_in, write + u_write, read + u_read
        usd += book.cost_usd(MODEL, TokenUsage(u_in, u_out, u_read, u_write, one_hour), now).usd
        usd_uncached += book.cost_usd(MODEL, TokenUsage(u_in + u_read + u_write, u_out, 0, 0), now).usd
    return {"full": full, "write": write, "read": read, "zar": usd * RATE, "zar_uncached": usd_uncached * RATE,
            "requests": len(requests), "refused": sum(1 for r in requests if "error" in (r.get("response") or {}))}


def _fact_in_last_input(requests: list[dict]) -> bool:
    answered = [r for r in requests if r.get("body")]
    return bool(answered) and "locker code is 7319" in json.dumps(answered[-1]["body"].get("messages"))


SUMMARISER_LATENCY_MS = 1500  # what a real summarising call of a few thousand tokens takes, about


def compaction_ttfb(h: Harness, turns: int = 16) -> dict[str, Any]:
    """The long-notes chat under CONTEXT_MAX_TOKENS=40000, with the summariser taking 1.5 s to answer
    (the turn's own model answers at once): each turn's time to its first content byte at the client
    (from the request to the first RunContent frame) and to its last byte, and which turns compacted."""
    import os
    import time

    from chatcore.config import get_settings
    from chatcore.turns.compaction import COMPACTION_MODEL

    standin = h.stack.standin
    standin.reset()
    standin.configure(latency_ms={COMPACTION_MODEL: SUMMARISER_LATENCY_MS})
    os.environ["CONTEXT_MAX_TOKENS"] = "40000"
    get_settings.cache_clear()
    note = ("The quick brown fox jumps over the lazy dog. " * 700)[:30_000]
    rows = []
    try:
        sid = h.new_session()
        for i in range(turns):
            before = _summary_calls(standin)
            started = time.perf_counter()
            first = None
            with h.client.stream("POST", f"/sessions/{sid}/turns", json={"message": f"Note {i + 1}. {note}"}) as r:
                for line in r.iter_lines():
                    if first is None and line == "event: RunContent":
                        first = time.perf_counter() - started
            rows.append({"turn": i + 1, "ttfb_ms": (first or float("nan")) * 1000,
                         "total_ms": (time.perf_counter() - started) * 1000,
                         "compacted": _summary_calls(standin) > before})
    finally:
        os.environ.pop("CONTEXT_MAX_TOKENS", None)
        get_settings.cache_clear()
        standin.reset()
    return {"turns": rows, "latency_ms": SUMMARISER_LATENCY_MS}


def _summary_calls(standin) -> int:
    from chatcore.turns.compaction import COMPACTION_MODEL

    return sum(1 for r in standin.requests() if (r.get("body") or {}).get("model") == COMPACTION_MODEL
               and "summarise" in json.dumps(r["body"].get("system")))


def compaction_ratio(res: dict[str, Any]) -> float:
    """The compaction turns' median time to first content byte over the other turns' (from turn 2)."""
    from statistics import median

    rows = res["turns"][1:]
    with_ = [r["ttfb_ms"] for r in rows if r["compacted"]]
    without = [r["ttfb_ms"] for r in rows if not r["compacted"]]
    return median(with_) / median(without) if with_ and without else float("nan")


def run(h: Harness) -> dict[str, Any]:
    standin = h.stack.standin
    results: dict[str, Any] = {}
    for name, turns in chats().items():
        row: dict[str, Any] = {"turns": len(turns)}
        for side, play in (("ours", _ours), ("agno", _agno)):
            say(f"bench: conversation, {name}: {side}")
            standin.reset()
            outcome = play(h, turns)
            requests = standin.requests()
            row[side] = {**outcome, **billing(requests), "fact": _fact_in_last_input(requests)}
        standin.reset()
        results[name] = row
    say("bench: conversation, time to first content byte of the compaction turns")
    results["_compaction"] = compaction_ttfb(h)
    return results


def _rands(value: Decimal) -> str:
    return f"R{value:,.2f}"


def report(res: dict[str, Any]) -> str:
    lines = ["", "7. CONVERSATION (through our API and through Agno's defaults, against the stand-in that refuses "
                 "what the Messages API refuses; input costs at claude-sonnet-5-5 prices, R18.00/USD)"]
    rows = []
    for name, row in res.items():
        if name.startswith("_"):
            continue
        ours, agno = row["ours"], row["agno"]
        fact = ("yes" if ours["fact"] else "no") if "fact" in name or "notes" in name else "-"
        agno_fact = ("yes" if agno["fact"] else "no") if fact != "-" else "-"
        ratio = f"{ours['zar'] / ours['zar_uncached']:.0%}" if ours["zar_uncached"] else "-"
        rows.append([name, f"{ours['failed']}/{row['turns']}", f"{agno['failed']}/{row['turns']}",
                     f"{fact} / {agno_fact}", f"{ours['full']:,}", f"{ours['write']:,}", f"{ours['read']:,}",
                     _rands(ours["zar"]), _rands(ours["zar_uncached"]), ratio, _rands(agno["zar"])])
    lines.append(table(["chat", "ours failed", "Agno failed", "turn-1 fact at the end (ours / Agno)",
                        "full-price in", "cache write", "cache read", "ours input", "same, uncached",
                        "cached / uncached", "Agno defaults input"], rows))
    lines.append("  tokens are summed over every request the model answered; Agno's defaults: the last 3 runs, "
                 "photos inline, no caching.")
    c = res.get("_compaction")
    if c:
        turns = c["turns"]
        done = [r["turn"] for r in turns if r["compacted"]]
        from statistics import median

        others = [r for r in turns[1:] if not r["compacted"]]
        lines.append(f"\n  compaction off the critical path: long notes under CONTEXT_MAX_TOKENS=40000, the summariser "
                     f"answering after {c['latency_ms']} ms, the turn's model at once; turns that compacted: {done}")
        lines.append(table(["turns", "first content byte (median)", "last byte (median)"], [
            ["that compacted", f"{median(r['ttfb_ms'] for r in turns if r['compacted']):.1f} ms" if done else "-",
             f"{median(r['total_ms'] for r in turns if r['compacted']):.1f} ms" if done else "-"],
            ["the others (from turn 2)", f"{median(r['ttfb_ms'] for r in others):.1f} ms",
             f"{median(r['total_ms'] for r in others):.1f} ms"]]))
        lines.append(f"  ratio (compacting / not): x{compaction_ratio(c):.2f}; the compacting turn's last byte waits for the "
                     "summary (stored with the turn), its first content byte does not.")
    return "\n".join(lines)
