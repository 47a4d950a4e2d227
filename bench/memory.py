"""8. Memory: what remembering the user costs and whether it works, through our API, against the
stand-in that bills prompt caching as Anthropic does.

One user with memory on and one with it off play the same 10 sessions of ``TURNS`` turns each: the
first turn of sessions 1-3 tells a fact ("Remember that ..."), the other turns are chat (long enough
for the prompt to be cached), and session 10 asks about the three facts. Per side: the wall time of
each turn (streamed, to its last byte), the model's input and output tokens and their cost (every
request the stand-in answered, at claude-sonnet-5-5's prices and R18.00 per dollar), the recall's
tokens in each session's first request, and the cache-read share of the later turns (turns 2 and on
of each session: cache-read input tokens over all input tokens of their requests). Recall: the facts
of sessions 1-3 in the input of session 10's first request, and in its answers.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import httpx

from bench.conversation import billing
from bench.harness import AGENT, Harness, say
from bench.stats import median, ms, table

SESSIONS = 10
TURNS = 4  # turns a session
FACTS = ("I am allergic to peanuts", "My daughter is called Lerato", "I live in Makhanda")
QUESTIONS = ("What am I allergic to?", "What is my daughter called?", "Where do I live?")
# what each answer must name, and what the recall must hold
ANSWERS = ("peanuts", "Lerato", "Makhanda")
# a chat turn: long enough (about 600 tokens) that every later request's prefix is over the 1,024
# tokens a prompt needs to be cached, with memory on or off
CHAT = "Tell me one more thing about the history of rooibos tea around the year {year}. " + (
    "In particular how it was grown on the slopes of the Cederberg, who picked and fermented it, how it "
    "was dried in the sun and carried to the coast, and how it reached the towns and the markets. ") * 10


def script() -> list[list[str]]:
    """Each session's messages, in order."""
    sessions = []
    for n in range(SESSIONS):
        turns = [CHAT.format(year=1800 + 10 * n + t) for t in range(TURNS)]
        if n < len(FACTS):
            turns[0] = f"Remember that {FACTS[n]}."
        if n == SESSIONS - 1:
            turns[:len(QUESTIONS)] = list(QUESTIONS)
        sessions.append(turns)
    return sessions


def _client(h: Harness, memory: bool) -> httpx.Client:
    from chatcore.web.identity import unsigned_jwt

    h.api
    client = httpx.Client(base_url=h.api.url, timeout=120, headers={
        "Authorization": f"Bearer {unsigned_jwt({'sub': f'bench-memory-{uuid.uuid4()}'})}"})
    r = client.put("/me/settings", json={"memory": memory})
    r.raise_for_status()
    return client


def _turn(client: httpx.Client, sid: str, message: str) -> tuple[float, str]:
    """Wall time (ms) of a streamed turn to its last byte, and the answer's text."""
    from chatcore.wire import sse

    t = time.perf_counter()
    with client.stream("POST", f"/sessions/{sid}/turns", json={"message": message}) as r:
        data = r.read()
    elapsed = (time.perf_counter() - t) * 1000
    events = sse.parse(data.decode())
    if r.status_code != 200 or not events or events[-1]["event"] != "TurnCompleted":
        raise RuntimeError(f"a memory bench turn failed: HTTP {r.status_code} {data[-600:]!r}")
    text = "".join(e["data"].get("content") or "" for e in events if e["event"] == "RunContent")
    return elapsed, text


def _recall(body: dict) -> str:
    from local.anthropic_standin import recall_text

    return recall_text(body.get("messages") or []) or ""


class _Side:
    """One user's play of the script (memory on or off): what it measured."""

    def __init__(self, h: Harness, memory: bool):
        self.client = _client(h, memory)
        self.times: dict[str, list[float]] = {"write": [], "recall": [], "chat": []}
        self.requests: list[dict] = []  # every request the model answered for this user
        self.later: list[dict] = []  # those of turns 2 and on of each session
        self.recall_tokens: list[int] = []
        self.answers: list[str] = []
        self.first_of_last: dict = {}
        self.sid = ""

    def turn(self, standin, n: int, t: int, message: str) -> None:
        if t == 0:
            self.sid = self.client.post("/sessions", json={"agent": AGENT}).json()["id"]
        before = len(standin.requests())
        elapsed, text = _turn(self.client, self.sid, message)
        requests = standin.requests()[before:]
        self.requests += requests
        kind = "write" if message.startswith("Remember") else "recall" if message in QUESTIONS else "chat"
        self.times[kind].append(elapsed)
        if t == 0:
            self.recall_tokens.append(math.ceil(len(_recall(requests[0]["body"])) / 4))
            if n == SESSIONS - 1:
                self.first_of_last = requests[0]["body"]
        else:
            self.later += requests
        if message in QUESTIONS:
            self.answers.append(text)

    def result(self) -> dict[str, Any]:
        stored = self.client.get("/me/memories").json()["items"]
        self.client.close()
        usages = [r["response"]["usage"] for r in self.later if "usage" in r["response"]]
        read = sum(u["cache_read_input_tokens"] for u in usages)
        total = sum(u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"] for u in usages)
        recall = _recall(self.first_of_last)
        return {
            "times": self.times, "billing": billing(self.requests, with_output=True), "requests": len(self.requests),
            "output_tokens": sum(r["response"]["usage"]["output_tokens"] for r in self.requests
                                 if "usage" in r["response"]),
            "cache_read_share": read / total if total else 0.0, "recall_tokens": self.recall_tokens,
            "memories": len(stored), "facts_in_input": sum(f in recall for f in FACTS),
            "facts_answered": sum(a in answer for a, answer in zip(ANSWERS, self.answers)),
            "consolidations": sum("You consolidate the memories" in json.dumps(r["body"].get("system"))
                                  for r in self.requests),
        }


def run(h: Harness) -> dict[str, Any]:
    """Both users play the script turn by turn, one after the other, so both see the same machine."""
    standin = h.stack.standin
    standin.reset()
    say(f"bench: memory, {SESSIONS} sessions of {TURNS} turns, one user with memory on and one with it off")
    sides = {"on": _Side(h, True), "off": _Side(h, False)}
    for n, messages in enumerate(script()):
        for t, message in enumerate(messages):
            for side in sides.values():
                side.turn(standin, n, t, message)
        h.reset_standin()  # what each side needs of the requests is kept by the side
    return {**{name: side.result() for name, side in sides.items()}, "turns": SESSIONS * TURNS}


def report(res: dict[str, Any]) -> str:
    on, off, turns = res["on"], res["off"], res["turns"]
    lines = ["", f"8. MEMORY (one user with memory on, one with it off: {SESSIONS} sessions of {TURNS} turns, "
                 f"facts told in sessions 1-3, asked in session 10; claude-sonnet-5-5 prices, R18.00/USD)"]
    rows = []
    for label, key in (("memory on", "on"), ("memory off", "off")):
        side = res[key]
        b = side["billing"]
        rows.append([label, f"{side['facts_in_input']}/{len(FACTS)}", f"{side['facts_answered']}/{len(FACTS)}",
                     str(side["memories"]), str(max(side["recall_tokens"])), f"{b['full']:,}", f"{b['write']:,}",
                     f"{b['read']:,}", f"{side['output_tokens']:,}", str(side["requests"]),
                     f"R{b['zar']:.4f}", f"{side['cache_read_share']:.0%}"])
    lines.append(table(["", "facts in session 10's input", "answered", "memories", "recall tokens (max)",
                        "full-price in", "cache write", "cache read", "output", "model calls", "cost",
                        "cache-read share, later turns"], rows))
    extra = (on["billing"]["zar"] - off["billing"]["zar"]) / turns
    timing = []
    for kind in ("write", "recall", "chat"):
        a, b = on["times"][kind], off["times"][kind]
        timing.append([kind, str(len(a)), ms(median(a)), ms(median(b)), ms(median(a) - median(b))])
    lines.append(table(["turns", "n", "median ms, on", "median ms, off", "extra"], timing))
    lines.append(f"  extra cost of memory: R{extra:.5f} a turn over {turns} turns (writes, recall, instructions and "
                 f"tools); consolidations: {on['consolidations']}. A write is the tool call and one more model "
                 "call to answer after it; the stand-in answers at once, so the times are our own overhead.")
    return "\n".join(lines)
