"""12. Estimate: the price before you send (``POST /sessions/{id}/turns/estimate``) against what each turn
really cost, for the conversation section's 40-turn chat and its phone photo a turn (``bench.conversation``),
against the stand-in that bills like the API (prompt cache included). Before each turn its estimate is
asked with the same body, then the turn is sent; its run's stored cost is the real one. A warm-up turn in
another session first: a session's first estimate goes by the newest first call of the same agent, as in
a deployment that has served anyone before.

And two sessions whose turns make several model calls (``MORE_CALLS``): a team's and a web-search agent's,
each after a warm-up turn of its own agent or team.

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
# Sessions whose turns make more than one model call: a team's (the planner's leader delegates each sum
# to its calculator member, then answers: three calls or more) and a web-search agent's (each turn a search).
MORE_CALLS = {
    "team (planner), a sum a turn, 10 turns": ({"team": "planner"}, [
        (f"What is {12 + 7 * i} * {3 + i}?", []) for i in range(10)]),
    "web-search agent (researcher), 10 turns": ({"agent": "researcher"}, [
        (f"Search the web for {topic}", []) for topic in (
            "the weather in Cape Town", "ferry times to Robben Island", "hikes near Stellenbosch",
            "restaurants in Franschhoek", "the tide tables for Muizenberg", "train times Cape Town to Simon's Town",
            "museums open on Mondays in Cape Town", "the price of a Table Mountain cable car ticket",
            "whale watching season in Hermanus", "markets on Saturdays in Woodstock")]),
}


def _turn(h: Harness, sid: str, body: dict[str, Any]) -> Decimal:
    """Send the turn; its stored cost in rands."""
    with h.client.stream("POST", f"/sessions/{sid}/turns", json=body) as r:
        data = r.read()
    if r.status_code != 200 or b"event: TurnCompleted" not in data:
        raise RuntimeError(f"a turn failed: {r.status_code} {data[-300:]!r}")
    row = h.conn().execute("SELECT cost_in_rands FROM runs WHERE id = %s", (r.headers["X-Run-Id"],)).fetchone()
    return row["cost_in_rands"]


def _session(h: Harness, body: dict[str, str]) -> str:
    r = h.client.post("/sessions", json=body)
    r.raise_for_status()
    return r.json()["id"]


def run(h: Harness) -> dict[str, Any]:
    from bench.conversation import chats

    h.reset_standin()
    _turn(h, h.new_session(), {"message": "Hello! A warm-up turn."})
    for body, turns in MORE_CALLS.values():  # a warm-up turn of each in a session of its own, too
        _turn(h, _session(h, body), {"message": turns[-1][0]})
    sessions = [(name, h.new_session, turns) for name, turns in chats().items() if name in CHATS]
    sessions += [(name, lambda body=body: _session(h, body), turns) for name, (body, turns) in MORE_CALLS.items()]
    results: dict[str, Any] = {}
    for name, new_session, turns in sessions:
        say(f"bench: estimate, {name}")
        sid = new_session()
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
                         "worst_turn": errors.index(max(errors)) + 1,
                         "within_25": sum(1 for e in errors if e <= 0.25), "bracketed": bracketed,
                         "over_25": {i + 1: round(e, 3) for i, e in enumerate(errors) if e > 0.25}}
    return results


def report(res: dict[str, Any]) -> str:
    lines = ["", "10. ESTIMATE (POST .../turns/estimate before each turn against the turn's stored cost; "
                 "the stand-in bills like the API, prompt cache included)"]
    rows = [[name, str(r["turns"]), f"{r['median']:.1%}", f"{r['worst']:.1%} (turn {r['worst_turn']})",
             f"{r['within_25']}/{r['turns']}",
             f"{r['bracketed']}/{r['turns']}",
             ", ".join(f"turn {i}: {e:.0%}" for i, e in r["over_25"].items()) or "-"] for name, r in res.items()]
    lines.append(table(["chat", "turns", "median |likely - real| / real", "worst", "within ±25 %",
                        "real in [low, high]", "turns past ±25 %"], rows))
    return "\n".join(lines)
