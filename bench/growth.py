"""2. Growth: per-turn time, stored bytes and round trips as one session gets long.

Two sessions, interleaved: ours through our API, Agno's through AgentOS
(``Agent(db=PostgresDb, add_history_to_context=True)``, Agno's defaults: the last 3 runs go to the
model; ours sends the turns of its history window, HISTORY_MAX_TURNS). Every turn is
"What is N * 7?" (one calculator call, two model calls, four messages).
The turns of the windows (and one untimed turn before each) are real turns; the turns between
windows are copies of the session's last real turn with fresh ids, written through each side's
own write path (our storage functions; Agno's ``PostgresDb.upsert_run``), so a 1,000-turn session
is reached in minutes (running all 1,000 turns of ours would take over ten: every turn replays
the whole history to the model).
Inside each window the turn is timed, and a bare ``agent.arun`` given exactly the history our
turn loads plus the message is timed just before it (so ``ours - bare`` is what storage and HTTP add, and
``bare`` shows what the growing model input costs). Bytes: stored row bytes of the window's turns
(pg_column_size of their rows) and the growth of the tables with indexes and TOAST
(pg_total_relation_size, page-granular), per turn. Round trips: right after each window, counted
through the latency proxy (bench.latency; nine real turns, numbered as such).
"""

from __future__ import annotations

import time
import uuid

from bench.harness import AGNO_TABLES, OUR_TABLES, Harness, say
from bench.stats import kb, median, ms, p90, paired_diffs, table

FULL_WINDOWS = [(1, 10), (190, 200), (990, 1000)]
QUICK_WINDOWS = [(1, 10), (40, 50), (90, 100)]


def turn_ten(h: Harness, samples: int) -> dict:
    """The 10th turn of ``samples`` fresh sessions per side (the target compares turn 1,000 with
    turn 10; inside the window 1-10 the history is still filling up)."""
    out = {"ours": [], "agentos": [], "bare": []}
    for _ in range(samples):
        ours_sid, os_sid = h.new_session(), str(uuid.uuid4())
        for n in range(1, 10):
            h.ours_turn(ours_sid, f"What is {n} * 7?")
            h.agentos_turn(os_sid, f"What is {n} * 7?")
        message = "What is 10 * 7?"
        out["bare"].append(h.bare_turn(h.load_history(ours_sid), message))
        out["ours"].append(h.ours_turn(ours_sid, message))
        out["agentos"].append(h.agentos_turn(os_sid, message))
        h.reset_standin()
    return out


def run(h: Harness, windows: list[tuple[int, int]], turn10_samples: int) -> dict:
    last_turn = windows[-1][1] + 1
    say(f"bench: growth, {last_turn} turns in one session on each side "
        f"(windows {', '.join(f'{a}-{b}' for a, b in windows)})")
    ours_sid, os_sid = h.new_session(), str(uuid.uuid4())
    results = [{"first": a, "last": b, "ours": [], "agentos": [], "bare": [], "begin": [], "store": []}
               for a, b in windows]
    by_start = {a: r for (a, _), r in zip(windows, results)}
    by_end = {b: r for (_, b), r in zip(windows, results)}
    traced = {b + 1: r for (_, b), r in zip(windows, results)}
    current = None
    started = time.time()
    real = set()
    for a, b in windows:
        real.update(range(max(1, a - 1), b + 2))
    os_db = h.agno["os_db"]
    n = 0
    while n < last_turn:
        n += 1
        if n not in real:
            skip_to = min(t for t in real if t > n)  # copy turns n .. skip_to - 1
            h.ours_copy_turns(ours_sid, skip_to - n)
            h.agno_copy_runs(os_db, os_sid, skip_to - n)
            say(f"bench: growth, turns {n}-{skip_to - 1} copied ({time.time() - started:.0f} s)")
            n = skip_to
        message = f"What is {n} * 7?"
        if n in by_start:
            current = by_start[n]
            current["ours_rel_before"] = h.relation_bytes(OUR_TABLES)
            current["agno_rel_before"] = h.relation_bytes(AGNO_TABLES)
        if n in traced:  # real turns: a warm-up and pairs through the latency proxy, numbered as such
            w = traced[n]
            ours_rt = h.count_round_trips("ours", ours_sid, message)
            os_rt = h.count_round_trips("agentos", os_sid, message)
            assert ours_rt["turns"] == os_rt["turns"]
            w["ours_round_trips"], w["agentos_round_trips"] = ours_rt["round_trips"], os_rt["round_trips"]
            n += ours_rt["turns"] - 1
        elif current is not None:
            history = h.load_history(ours_sid)
            current["bare"].append(h.bare_turn(history, message))
            b, st = len(h.breakdown.begin_ms), len(h.breakdown.store_ms)
            current["ours"].append(h.ours_turn(ours_sid, message))
            current["begin"] += h.breakdown.begin_ms[b:]
            current["store"] += h.breakdown.store_ms[st:]
            current["agentos"].append(h.agentos_turn(os_sid, message))
        else:
            h.ours_turn(ours_sid, message)
            h.agentos_turn(os_sid, message)
        h.reset_standin()
        if n in by_end:
            w = by_end[n]
            turns = w["last"] - w["first"] + 1
            w["ours_rel"] = (h.relation_bytes(OUR_TABLES) - w["ours_rel_before"]) / turns
            w["agno_rel"] = (h.relation_bytes(AGNO_TABLES) - w["agno_rel_before"]) / turns
            w["ours_row_bytes"] = h.our_row_bytes(ours_sid, w["first"], w["last"]) / turns
            w["agno_row_bytes"] = h.agno_row_bytes(os_sid, w["first"], w["last"]) / turns
            w["ours_minus_bare"] = paired_diffs(w["ours"], w["bare"])
            current = None
    say(f"bench: growth, the 10th turn of {turn10_samples} fresh sessions per side")
    return {"windows": results, "turn10": turn_ten(h, turn10_samples)}


def report(res: dict) -> str:
    lines = ["", "2. GROWTH (one session; per turn; ms are medians over the window, p90 in brackets)"]
    rows = []
    for w in res["windows"]:
        rows.append([
            f"{w['first']}-{w['last']}",
            f"{ms(median(w['ours']))} ({ms(p90(w['ours']))})",
            f"{ms(median(w['bare']))} ({ms(p90(w['bare']))})",
            f"{ms(median(w['ours_minus_bare']))}",
            f"{ms(median(w['begin']))} / {ms(median(w['store']))}",
            f"{ms(median(w['agentos']))} ({ms(p90(w['agentos']))})",
            kb(w["ours_row_bytes"]), kb(w["ours_rel"]), kb(w["agno_row_bytes"]), kb(w["agno_rel"]),
            str(w.get("ours_round_trips", "-")), str(w.get("agentos_round_trips", "-")),
        ])
    t = res["turn10"]
    rows.append([f"10th x{len(t['ours'])}", f"{ms(median(t['ours']))} ({ms(p90(t['ours']))})",
                 f"{ms(median(t['bare']))} ({ms(p90(t['bare']))})",
                 ms(median(paired_diffs(t["ours"], t["bare"]))), "",
                 f"{ms(median(t['agentos']))} ({ms(p90(t['agentos']))})", "", "", "", "", "", ""])
    lines.append(table(["turns", "ours API", "bare, same input", "ours-bare", "begin/store", "AgentOS",
                        "ours rows", "ours tables", "Agno rows", "Agno tables", "ours RT", "AgentOS RT"], rows))
    lines.append("  bare = our agent without db given exactly the history our turn loads (what the model input"
                 " costs); Agno sends its last 3 runs.\n"
                 "  10th xN = the 10th turn of N fresh sessions per side (the target's 'turn 10').\n"
                 "  begin/store = server-side ms of begin_turn (lock, insert run, store the user message, load the"
                 " history) and of storing the outcome; RT = database round trips of one turn.")
    return "\n".join(lines)
