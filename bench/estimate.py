"""12. Estimate: the price before you send (``POST /sessions/{id}/turns/estimate``) against what each turn
really cost, for the conversation section's 40-turn chat and its phone photo a turn (``bench.conversation``),
against the stand-in that bills like the API (prompt cache included). Before each turn its estimate is
asked with the same body, then the turn is sent; its run's stored cost is the real one. A warm-up turn in
another session first: a session's first estimate goes by the newest first call of the same agent, as in
a deployment that has served anyone before.

Per chat: the worst and median |likely - real| / real, and the turns whose real cost lies in [low, high].
"""

from __future__ import annotations

import base64
import statistics
from decimal import Decimal
from typing import Any

from bench.harness import Harness, say
from bench.stats import table

CHATS = ("40-turn chat, a fact in turn 1", "a phone photo a turn, 20 turns")


def _turn(h: Harness, sid: str, body: dict[str, Any]) -> Decimal:
    """Send the turn; its stored cost in rands."""
    with h.client.stream("POST", f"/sessions/{sid}/turns", json=body) as r:
        data = r.read()
    if r.status_code != 200 or b"event: TurnCompleted" not in data:
        raise RuntimeError(f"a turn failed: {r.status_code} {data[-300:]!r}")
    row = h.conn().execute("SELECT cost_in_rands FROM runs WHERE id = %s", (r.headers["X-Run-Id"],)).fetchone()
    return row["cost_in_rands"]


def run(h: Harness) -> dict[str, Any]:
    from bench.conversation import chats

    h.reset_standin()
    _turn(h, h.new_session(), {"message": "Hello! A warm-up turn."})
    results: dict[str, Any] = {}
    for name, turns in chats().items():
        if name not in CHATS:
            continue
        say(f"bench: estimate, {name}")
        sid = h.new_session()
        errors, bracketed = [], 0
        for message, photos in turns:
            body: dict[str, Any] = {"message": message}
            if photos:
                body["images"] = [{"data": base64.b64encode(p).decode()} for p in photos]
            r = h.client.post(f"/sessions/{sid}/turns/estimate", json=body)
            if r.status_code != 200:
                raise RuntimeError(f"an estimate failed: {r.status_code} {r.text[:300]}")
            cost = r.json()["cost"]
            real = _turn(h, sid, body)
            likely, low, high = (Decimal(cost[k]["zar"]) for k in ("likely", "low", "high"))
            errors.append(float(abs(likely - real) / real))
            bracketed += low <= real <= high
        results[name] = {"turns": len(turns), "worst": max(errors), "median": statistics.median(errors),
                         "within_25": sum(1 for e in errors if e <= 0.25), "bracketed": bracketed,
                         "over_25": {i + 1: round(e, 3) for i, e in enumerate(errors) if e > 0.25}}
    return results


def report(res: dict[str, Any]) -> str:
    lines = ["", "10. ESTIMATE (POST .../turns/estimate before each turn against the turn's stored cost; "
                 "the stand-in bills like the API, prompt cache included)"]
    rows = [[name, str(r["turns"]), f"{r['median']:.1%}", f"{r['worst']:.1%}", f"{r['within_25']}/{r['turns']}",
             f"{r['bracketed']}/{r['turns']}",
             ", ".join(f"turn {i}: {e:.0%}" for i, e in r["over_25"].items()) or "-"] for name, r in res.items()]
    lines.append(table(["chat", "turns", "median |likely - real| / real", "worst", "within ±25 %",
                        "real in [low, high]", "turns past ±25 %"], rows))
    return "\n".join(lines)
