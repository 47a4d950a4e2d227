"""Scale: the same figures at today's size and at 10 million messages (``bin/bench --only scale``;
``--quick``: 200,000). Run only when named: it is not part of the default run.

The benchmark's database gets a probe user through our API (the benchmark's own ``sub``): a real
turn (the template of every synthetic turn, ``bench.synthetic``), a 100-turn session for the reads,
and per size a fresh 20-turn session whose next turns are real turns through the API. Around it,
synthetic users and sessions (about 100 turns per user, 10 per session) get turns in two steps:

1. today's size: the turns of the last two UTC days at the daily rate of the full set (the 10 M set
   spread over ``DAYS`` days, so 2/DAYS of it), then the full rollup, then the figures;
2. the older days up to the full count (10 M messages; their events pruned to the final one, as the
   scheduled run leaves them), the rollup of those days, then the same figures again.

So the probe's data and the daily volume are the same at both sizes and only the tables' size
differs: a ratio over 1.5 is a query that reads more as the tables grow (a missing index, a plan
gone wrong), which is what this benchmark exists to catch. The figures, each the real chatcore
function or route:

- history load: ``store.turns.read_turn_start`` (the turn's first statement, its history window);
- a messages page: ``GET /sessions/{id}/messages?limit=200``;
- usage: ``GET /usage`` (the current month);
- the incremental rollup: ``money.rollup.incremental`` after a batch of new turns today, per
  100,000 messages in the two days it recomputes (each batch adds to them);
- a turn's begin and store: the two transactions of a real turn through the API
  (``chatcore.observability.observe_steps``);
- deleting a session of 10 turns: ``store.sessions.delete_session`` inside a transaction that is
  rolled back (so the same session is deleted each time); at the larger size also without the index
  on ``runs.parent_run_id`` (dropped inside that transaction), the figure before migration 0013.

Printed, not judged: the pruning's DELETE (rolled back) at both sizes, the rollup with JIT on (before
``store.usage.NO_JIT``), and what a turn costs the database (``turn_cost``).

Exit status 3 (``RatioExceeded``) when a figure's fastest run at the larger size takes more than
``LIMIT`` times its fastest at today's size (``ratios``: other work on a shared machine only adds
time, so the fastest of N runs is the figure's own cost; the medians are printed beside it).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, timedelta

from bench import synthetic
from bench.harness import Harness, say
from bench.stats import median, ms, table

FULL_MESSAGES = 10_000_000
QUICK_MESSAGES = 200_000
DAYS = 90
QUICK_DAYS = 20
LIMIT = 1.5
TEXT = "What is 12 * 7?"
# Every real turn of this benchmark is scripted like a real one: a calculator call, then an answer of
# 150 words (about 200 tokens, streamed in 50 chunks of three words as Claude streams them), so the
# rows and events copied into the synthetic turns have a real turn's sizes and counts (the stand-in's
# default answer is one short sentence).
ANSWER = " ".join(
    ["12 multiplied by 7 is 84, as the calculator confirms. To check it by hand, take 10 times 7,",
     "which is 70, and add 2 times 7, which is 14: 70 plus 14 gives 84. The same answer comes from",
     "adding 12 seven times in a row, or 7 twelve times. If this is for a receipt or a budget, note",
     "that 84 is the total before any tax or discount; with 15 percent value added tax on top, the",
     "total would be 96.60, and a 10 percent discount first would bring it to 75.60 before tax.",
     "A quick way to remember it: 12 times 7 is the same as 6 times 14, and both are 84. For",
     "larger sums, the calculator keeps every step exact, so feel free to send the whole list of",
     "items and I will add them up, show each line, and give you the total in rands and in dollars",
     "at today's rate, so the budget for the month stays easy to follow and to check later on."])
PARENT_INDEX = "runs_parent_run"

FIGURES = (
    ("history", "history load: read_turn_start, 100-turn session (window HISTORY_MAX_TURNS)"),
    ("messages", "messages page: GET /sessions/{id}/messages?limit=200"),
    ("usage", "usage: GET /usage (this month)"),
    ("rollup", "incremental rollup (2 days) after new turns today, per 100,000 messages"),
    ("begin", "a turn's begin (first transaction)"),
    ("store", "a turn's store (last transaction)"),
    ("delete", "delete a 10-turn session (store.sessions.delete_session)"),
)


class RatioExceeded(SystemExit):
    def __init__(self, names: list[str]) -> None:
        super().__init__(3)
        self.names = names


def _latest_run(conn, session_id: str):
    return conn.execute("""SELECT id FROM runs WHERE session_id = %s AND parent_run_id IS NULL
                           ORDER BY id DESC LIMIT 1""", (session_id,)).fetchone()["id"]


def _turn(h: Harness, session_id: str) -> None:
    h.stack.standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "12 * 7"}}},
                            {"text": ANSWER}])
    h.ours_turn(session_id, TEXT)


def _session_with_turns(h: Harness, turns: int) -> str:
    sid = h.new_session()
    _turn(h, sid)
    if turns > 1:
        h.ours_copy_turns(sid, turns - 1)
    return sid


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _postgres_cpu_ns(h: Harness) -> int:
    """CPU time (ns, /proc/PID/schedstat) of the cluster's client backends and WAL writer so far (not
    autovacuum, the checkpointer or the background writer, whose work is not a request's)."""
    import os

    root = int((h.stack.postgres.root / "data" / "postmaster.pid").read_text().split()[0])
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat[stat.rfind(")") + 2:].split()[1]) != root:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
            if any(w in title for w in ("autovacuum", "checkpointer", "background writer", "logical replication",
                                        "archiver", "stats")):
                continue
            with open(f"/proc/{entry}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _counts(conn) -> dict:
    return conn.execute("""SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS wal,
        (SELECT count(*) FROM chat_events) AS messages, (SELECT count(*) FROM runs) AS runs,
        (SELECT count(*) FROM turn_events) AS events""").fetchone()


def turn_cost(h: Harness, *, turns: int, streamed: int) -> dict:
    """What a turn costs the database: CPU of its backends, WAL, rows, for ``turns`` instant turns and
    ``streamed`` turns whose answer streams for 8 s (50 chunks 160 ms apart: the events are written
    in batches every EVENT_BATCH_SECONDS while it streams, as with a real model)."""
    conn = h.conn()
    out = {}
    for kind, n, step in (("instant", turns, {"text": ANSWER}),
                          ("streamed 8 s", streamed, {"text": ANSWER, "delay_ms": 160})):
        sid = _session_with_turns(h, 10)
        before, cpu0, t = _counts(conn), _postgres_cpu_ns(h), time.perf_counter()
        for _ in range(n):
            h.stack.standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "12 * 7"}}}, step])
            h.ours_turn(sid, TEXT)
        cpu1, wall, after = _postgres_cpu_ns(h), time.perf_counter() - t, _counts(conn)
        out[kind] = {"turns": n, "cpu_ms": (cpu1 - cpu0) / 1e6 / n, "wall_s": wall / n,
                     **{k: (after[k] - before[k]) / n for k in ("wal", "messages", "runs", "events")}}
    return out


def _has_parent_index(conn) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", (PARENT_INDEX,)).fetchone()["ok"]


def measure(h: Harness, probe: dict, shape: synthetic.Shape, *, quick: bool, next_turn: int,
            without_index: bool) -> dict:
    from chatcore.money import rollup
    from chatcore.store import sessions

    conn = h.conn()
    res: dict = {}
    reads = 10 if quick else 50
    h.history_dicts(probe["history"])  # warm
    res["history"] = _timed(lambda: h.history_dicts(probe["history"]), reads)

    def page() -> None:
        r = h.client.get(f"/sessions/{probe['history']}/messages", params={"limit": 200})
        r.raise_for_status()
        if len(r.json()["items"]) != 200:
            raise RuntimeError(f"scale: a messages page held {len(r.json()['items'])} messages")

    page()
    res["messages"] = _timed(page, reads)

    def usage() -> None:
        h.client.get("/usage").raise_for_status()

    usage()
    res["usage"] = _timed(usage, reads)

    # The rollup recomputes today and yesterday: the messages in them grow with each batch added here
    # (and at the larger size with the first size's batches too), so the figure judged is its time per
    # 100,000 messages recomputed; the raw times are printed beside it.
    batch = 200 if quick else 1_000
    res["rollup"], res["rollup_ms"], res["rollup_rows"] = [], [], []

    def rollup_once() -> tuple[float, int]:
        nonlocal next_turn
        now = conn.execute("SELECT now() AS n").fetchone()["n"]
        synthetic.add_turns(conn, shape, batch, now - timedelta(minutes=5), now - timedelta(seconds=1),
                            first=next_turn, events_since=now - timedelta(hours=24))
        next_turn += batch
        conn.execute("ANALYZE chat_events")  # what autovacuum does; a steady state's plans
        yesterday = (now.astimezone(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        rows = conn.execute("SELECT count(*) AS n FROM chat_events WHERE created_at >= %s",
                            (yesterday,)).fetchone()["n"]
        t = time.perf_counter()
        inc = rollup.incremental(conn)
        elapsed = (time.perf_counter() - t) * 1000
        if len(inc.days) != 2:
            raise RuntimeError(f"scale: the incremental rollup recomputed {len(inc.days)} days, not 2")
        res["rollup_rows"].append(rows)
        return elapsed, rows

    for _ in range(2 if quick else 5):
        elapsed, rows = rollup_once()
        res["rollup_ms"].append(elapsed)
        res["rollup"].append(elapsed * 100_000 / rows)
    if without_index:  # the figure before the rollup turned JIT off (store.usage.NO_JIT), same batches
        from chatcore.store import usage as usage_sql

        saved, usage_sql.NO_JIT = usage_sql.NO_JIT, "SET LOCAL jit = on"
        res["rollup_with_jit"] = []
        try:
            for _ in range(2 if quick else 3):
                elapsed, rows = rollup_once()
                res["rollup_with_jit"].append(elapsed * 100_000 / rows)
        finally:
            usage_sql.NO_JIT = saved

    sid = _session_with_turns(h, 20)
    bd = h.breakdown
    b0, s0 = len(bd.begin_ms), len(bd.store_ms)
    for _ in range(8 if quick else 20):
        _turn(h, sid)
    res["begin"], res["store"] = bd.begin_ms[b0:], bd.store_ms[s0:]

    doomed = uuid.UUID(_session_with_turns(h, 10))

    def delete(drop_index: bool = False) -> None:
        with conn.transaction(force_rollback=True):
            if drop_index:
                conn.execute(f"DROP INDEX {PARENT_INDEX}")
            sessions.delete_session(conn, doomed)

    delete()
    res["delete"] = _timed(delete, 5 if quick else 10)
    if without_index and _has_parent_index(conn):
        res["delete_without_index"] = _timed(lambda: delete(True), 2)
    # information, not judged: the scheduled pruning's DELETE of every finished turn's events but the
    # final one (hours=0: the last day's turns, whose events are all still kept), rolled back
    from chatcore.turns.outcome import FINAL_EVENTS
    from chatcore.store import turn_events

    with conn.transaction(force_rollback=True):
        t = time.perf_counter()
        pruned = turn_events.prune_events(conn, 0, keep=FINAL_EVENTS.values())
        res["prune"] = {"ms": (time.perf_counter() - t) * 1000, "rows": pruned}
    res["next_turn"] = next_turn
    return res


def run(h: Harness, quick: bool) -> dict:
    from chatcore.money import rollup

    total = QUICK_MESSAGES if quick else FULL_MESSAGES
    days = QUICK_DAYS if quick else DAYS
    conn = h.conn()
    template_sid = h.new_session()
    _turn(h, template_sid)
    template_run = _latest_run(conn, template_sid)
    now = conn.execute("SELECT now() AS n").fetchone()["n"]
    per_turn = conn.execute("SELECT count(*) AS n FROM chat_events WHERE run_id = %s",
                            (template_run,)).fetchone()["n"]
    # one turn in ten is a team turn, with a member run of two more messages
    turns = int(total / (per_turn + 2 / synthetic.TEAM_EVERY))
    shape = synthetic.Shape.for_turns(turns)
    say(f"bench: scale, {total:,} messages = {turns:,} turns of {shape.users:,} users in {shape.sessions:,} "
        f"sessions over {days} days")
    template = synthetic.prepare(conn, template_run, shape, now - timedelta(days=days + 1))
    probe = {"history": _session_with_turns(h, 100)}
    h.reset_standin()

    def progress(what: str) -> None:
        say(f"bench: scale, {what}")

    events_since = now - timedelta(hours=24)
    recent = turns * 2 // days
    t = time.time()
    synthetic.add_turns(conn, shape, recent, now - timedelta(days=2), now - timedelta(minutes=10),
                        first=1, events_since=events_since, progress=progress)
    synthetic.analyze(conn)
    day_from = (now - timedelta(days=days + 1)).astimezone(UTC).date()
    rollup.incremental(conn)  # the first: every day, and the watermark
    conn.execute("VACUUM ANALYZE daily_costs")
    small_gen = time.time() - t
    small_sizes = synthetic.table_sizes(conn)
    say("bench: scale, measuring at today's size")
    small = measure(h, probe, shape, quick=quick, next_turn=turns + 1, without_index=False)

    t = time.time()
    synthetic.add_turns(conn, shape, turns - recent, now - timedelta(days=days), now - timedelta(days=2),
                        first=recent + 1, events_since=events_since, progress=progress)
    synthetic.analyze(conn)
    gen_s = time.time() - t
    t = time.time()
    rollup.rollup(conn, day_from, (now - timedelta(days=2)).astimezone(UTC).date())
    full_rollup_s = time.time() - t
    conn.execute("VACUUM ANALYZE daily_costs")
    big_sizes = synthetic.table_sizes(conn)
    say("bench: scale, measuring at the larger size")
    big = measure(h, probe, shape, quick=quick, next_turn=small["next_turn"], without_index=True)
    say("bench: scale, what a turn costs the database")
    cost = turn_cost(h, turns=5 if quick else 20, streamed=2 if quick else 5)
    return {"total": total, "days": days, "turns": turns, "shape": shape, "template": template,
            "per_turn": per_turn, "small": small, "big": big, "small_sizes": small_sizes,
            "big_sizes": big_sizes, "small_generate_s": small_gen, "generate_s": gen_s,
            "full_rollup_s": full_rollup_s, "parent_index": _has_parent_index(conn), "cost": cost}


def ratios(res: dict) -> dict[str, float]:
    """The fastest run at the larger size over the fastest at today's: other work on a shared machine
    only ever adds time to a run, so the fastest of N is the figure's own cost, and a ratio of medians
    moves with whatever else the machine did during each half (both are printed)."""
    return {name: min(res["big"][name]) / min(res["small"][name]) for name, _ in FIGURES}


def report(res: dict) -> str:
    s, b = res["small_sizes"], res["big_sizes"]
    lines = ["", f"12. SCALE (today's size vs {res['total']:,} messages; ms)"]
    sizes = [[name, f"{s[name]['rows']:,}", f"{s[name]['bytes'] / 2**20:,.0f} MB", f"{b[name]['rows']:,}",
              f"{b[name]['bytes'] / 2**20:,.0f} MB"] for name in ("chat_events", "runs", "turn_events", "sessions",
                                                                    "users", "daily_costs")]
    lines.append(table(["table (estimated rows)", "today: rows", "size", "larger: rows", "size"], sizes))
    lines.append(f"  {res['turns']:,} turns ({res['per_turn']} messages each, a team turn 2 more), "
                 f"{res['shape'].users:,} users, {res['shape'].sessions:,} sessions over {res['days']} days; "
                 f"the template turn: {res['template']['messages']} messages of {res['template']['message_bytes']:,} "
                 f"bytes of JSONB, {res['template']['events']} events of {res['template']['event_bytes']:,} bytes")
    lines.append(f"  generated: today's size in {res['small_generate_s']:.0f} s, the older days in "
                 f"{res['generate_s']:.0f} s; their full rollup {res['full_rollup_s']:.0f} s")
    rows, over = [], []
    r = ratios(res)
    for name, label in FIGURES:
        sm, bg = res["small"][name], res["big"][name]
        flag = "" if r[name] <= LIMIT else f"  OVER {LIMIT}x"
        if flag:
            over.append(name)
        rows.append([label, ms(min(sm)), ms(median(sm)), ms(min(bg)), ms(median(bg)), f"x{r[name]:.2f}{flag}",
                     str(len(bg))])
    lines.append(table(["", "today fastest", "median", "larger fastest", "median", "ratio", "runs"], rows))
    lines.append("  ratio = fastest at the larger size / fastest at today's (other work on the machine only adds "
                 "time); medians: x" + ", x".join(f"{median(res['big'][n]) / median(res['small'][n]):.2f}"
                                                  for n, _ in FIGURES))
    sm, bg = res["small"], res["big"]
    lines.append(f"  incremental rollup, raw: median {ms(median(sm['rollup_ms']))} ms recomputing "
                 f"{median(sm['rollup_rows']):,.0f} messages (today's size), {ms(median(bg['rollup_ms']))} ms recomputing "
                 f"{median(bg['rollup_rows']):,.0f} (larger)")
    for size in ("small", "big"):
        pr = res[size].get("prune")
        if pr:
            lines.append(f"  pruning ({'today' if size == 'small' else 'larger'}; not judged): {pr['rows']:,} events "
                         f"deleted in {pr['ms'] / 1000:.1f} s ({pr['rows'] / max(pr['ms'], 1) * 1000:,.0f} rows/s), "
                         "rolled back")
    if "delete_without_index" in res["big"]:
        wi = res["big"]["delete_without_index"]
        lines.append(f"  delete a 10-turn session at the larger size WITHOUT the index {PARENT_INDEX} (before "
                     f"migration 0013): median {ms(median(wi))} ms, x{median(wi) / median(res['big']['delete']):.0f} "
                     "the figure with it")
    if "rollup_with_jit" in res["big"]:
        wj = res["big"]["rollup_with_jit"]
        lines.append(f"  incremental rollup at the larger size WITH JIT (before SET LOCAL jit = off): median "
                     f"{ms(median(wj))} ms per 100,000 messages, x{median(wj) / median(res['big']['rollup']):.2f} "
                     "the figure without")
    if not res["parent_index"]:
        lines.append(f"  no index {PARENT_INDEX}: deleting a session scans runs once per deleted run")
    if res.get("cost"):
        rows = [[kind, str(c["turns"]), f"{c['wall_s']:.2f}", f"{c['cpu_ms']:.1f}", f"{c['wal'] / 1024:.1f}",
                 f"{c['messages']:.1f}", f"{c['runs']:.1f}", f"{c['events']:.1f}"] for kind, c in res["cost"].items()]
        lines.append("  what a turn costs the database at the larger size (per turn; CPU of the client backends and "
                     "the WAL writer; not judged)")
        lines.append(table(["turn", "turns", "wall s", "DB CPU ms", "WAL KB", "messages", "runs", "events"], rows,
                           indent="    "))
    lines.append(f"  limit: every ratio at most {LIMIT}x; " + (f"OVER: {', '.join(over)}" if over else "all within"))
    return "\n".join(lines)


def check(res: dict) -> None:
    over = [name for name, ratio in ratios(res).items() if ratio > LIMIT]
    if over:
        raise RatioExceeded(over)
