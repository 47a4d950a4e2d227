"""1. Turn overhead: a full streamed turn through our API minus a bare ``agent.arun`` of the same turn.

Each round uses fresh sessions and measures their SECOND turn (the first, untimed, gives it a
history of one tool turn): ours through the HTTP API, Agno through AgentOS (HTTP) and through
``Agent(db=PostgresDb)`` in-process, and a bare reused agent (our agent definition, no db) given
exactly our stored history plus the same message. The order of the four rotates every round;
overheads are medians of the per-round differences. The message makes the stand-in call the
calculator once (two model calls). The image turn adds a ~200 KB PNG to the same message.
Round trips are counted on separate, traced turns (see bench.trace).
"""

from __future__ import annotations

import uuid

from bench.harness import Harness, say
from bench.stats import median, ms, p90, paired_diffs, table

TEXT = "What is 12 * 7?"
SECOND = "And what is 15 * 3?"


def run(h: Harness, repeat: int, png: bytes) -> dict:
    results: dict = {}
    for kind, image in (("text", None), ("image", png)):
        say(f"bench: turn overhead ({kind}), {repeat} rounds")
        samples: dict[str, list[float]] = {"bare": [], "ours": [], "agentos": [], "agno": [], "begin": [], "store": [], "media": []}
        # warm every path first (the first requests build models, clients, tables)
        for _ in range(2):
            _round(h, image, {k: [] for k in samples}, order=0)
        for i in range(repeat):
            _round(h, image, samples, order=i)
            h.reset_standin()
        rt = _round_trips(h, image)
        results[kind] = {
            "samples": samples,
            "ours_minus_bare": paired_diffs(samples["ours"], samples["bare"]),
            "agentos_minus_bare": paired_diffs(samples["agentos"], samples["bare"]),
            "agno_minus_bare": paired_diffs(samples["agno"], samples["bare"]),
            "begin_ms": samples["begin"],
            "store_ms": samples["store"],
            "round_trips": rt,
        }
    return results


def _round(h: Harness, png: bytes | None, samples: dict[str, list[float]], order: int) -> None:
    ours_sid = h.new_session()
    h.ours_turn(ours_sid, TEXT)
    os_sid, agno_sid = str(uuid.uuid4()), str(uuid.uuid4())
    h.agentos_turn(os_sid, TEXT)
    h.agno_turn(agno_sid, TEXT)
    history = h.load_history(ours_sid)

    def ours() -> float:
        bd = h.breakdown
        b, st, md = len(bd.begin_ms), len(bd.store_ms), len(bd.media)
        elapsed = h.ours_turn(ours_sid, SECOND, png)
        samples["begin"] += bd.begin_ms[b:]
        samples["store"] += bd.store_ms[st:]
        samples["media"].append(list(bd.media[md:]))
        return elapsed

    steps = [
        ("bare", lambda: h.bare_turn(history, SECOND, png)),
        ("ours", ours),
        ("agentos", lambda: h.agentos_turn(os_sid, SECOND, png)),
        ("agno", lambda: h.agno_turn(agno_sid, SECOND, png)),
    ]
    k = order % len(steps)
    for name, step in steps[k:] + steps[:k]:
        samples[name].append(step())


def _round_trips(h: Harness, png: bytes | None) -> dict:
    """Round trips through the latency proxy (bench.latency); the statements from a protocol trace."""
    out = {}
    ours_sid = h.new_session()
    h.ours_turn(ours_sid, TEXT)
    out["ours_statements"] = h.ours_round_trips(ours_sid, SECOND, png).result.statements
    out["ours"] = h.count_round_trips("ours", ours_sid, SECOND, png)
    os_sid, agno_sid = str(uuid.uuid4()), str(uuid.uuid4())
    h.agentos_turn(os_sid, TEXT)
    out["agentos_statements"] = h.agentos_round_trips(os_sid, SECOND, png).result.statements
    out["agentos"] = h.count_round_trips("agentos", os_sid, SECOND, png)
    h.agno_turn(agno_sid, TEXT)
    out["agno"] = h.count_round_trips("agno", agno_sid, SECOND, png)
    return out


def report(results: dict) -> str:
    lines = ["", "1. TURN OVERHEAD (2nd turn of a fresh session: one calculator call, two model calls)"]
    for kind, r in results.items():
        s = r["samples"]
        n = len(s["ours"])
        rows = [
            ["bare agent.arun (same agent, no db, reused)", ms(median(s["bare"])), ms(p90(s["bare"])), "", ""],
            ["OURS: streamed turn through our API", ms(median(s["ours"])), ms(p90(s["ours"])),
             ms(median(r["ours_minus_bare"])), ms(p90(r["ours_minus_bare"]))],
            ["  of which begin_turn (store user msg, load history)", ms(median(r["begin_ms"])), ms(p90(r["begin_ms"])), "", ""],
            ["  of which store outcome (new messages, run)", ms(median(r["store_ms"])), ms(p90(r["store_ms"])), "", ""],
            ["AGNO: AgentOS streamed run (HTTP, PostgresDb)", ms(median(s["agentos"])), ms(p90(s["agentos"])),
             ms(median(r["agentos_minus_bare"])), ms(p90(r["agentos_minus_bare"]))],
            ["AGNO: Agent(db=PostgresDb).arun in-process", ms(median(s["agno"])), ms(p90(s["agno"])),
             ms(median(r["agno_minus_bare"])), ms(p90(r["agno_minus_bare"]))],
        ]
        lines.append(f"\n  {kind} turn, {n} rounds (ms)")
        lines.append(table(["", "median", "p90", "- bare med", "- bare p90"], rows))
        media = _media_summary(s["media"])
        if media:
            lines.append("  ours, image work per turn (medians): " + ", ".join(media))
        rt = r["round_trips"]
        lines.append(f"  database round trips per {kind} turn (latency proxy, "
                     f"{'/'.join(f'{d:.0f}' for d in rt['ours']['delay_ms'])} ms): "
                     f"ours {rt['ours']['round_trips']}, AgentOS {rt['agentos']['round_trips']}, "
                     f"Agno PostgresDb in-process {rt['agno']['round_trips']}   (estimates: ours "
                     + ", ".join(f"{e:.1f}" for e in rt["ours"]["estimates"]) + ")")
        lines.append("    ours sends:    " + " | ".join(rt["ours_statements"]))
        lines.append("    AgentOS sends: " + " | ".join(rt["agentos_statements"]))
    return "\n".join(lines)


def _media_summary(per_turn: list[list[tuple[str, float]]]) -> list[str]:
    labels = sorted({label for turn in per_turn for label, _ in turn})
    out = []
    for label in labels:
        calls = [sum(1 for lb, _ in turn if lb == label) for turn in per_turn]
        total = [sum(t for lb, t in turn if lb == label) for turn in per_turn]
        out.append(f"{label} {ms(median(total))} ms in {median(calls):.0f} call(s)")
    return out
