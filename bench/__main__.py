"""``bin/bench [--quick] [--only NAME[,NAME]] [--repeat N]``: see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from bench.harness import say
from bench.stats import table

SECTIONS = ("overhead", "growth", "history", "bytes", "rollup", "cold_start", "built", "conversation", "messages",
            "events", "memory", "photos", "estimate", "ttfb")
# run only when named (--only scale): it generates 10 million messages (200,000 with --quick)
ON_REQUEST = ("scale",)
NEEDS_STACK = {"overhead", "growth", "history", "bytes", "rollup", "conversation", "messages", "events", "memory",
               "estimate", "scale", "ttfb"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bin/bench", description=(
        "Benchmarks of the turn path and storage against Agno's own PostgresDb, on the local stack "
        "(real Postgres, moto S3, the instant stand-in model)."))
    p.add_argument("--quick", action="store_true",
                   help="smaller numbers for a fast run (growth 1-10/40-50/90-100, 100k rollup rows, fewer repeats)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run: {', '.join(SECTIONS)} (default: all of these), "
                        f"and {', '.join(ON_REQUEST)} (only when named: 10 million messages, 200,000 with --quick)")
    p.add_argument("--repeat", type=int, default=None,
                   help="samples per figure (default: 20 for turns, 30 for history loads, 5 for cold starts; "
                        "fewer with --quick); full rollups run min(N, 3) times, incremental ones min(N, 5)")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SECTIONS + ON_REQUEST]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS + ON_REQUEST)}")
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def _our_roots(harness) -> list[int]:
    """This process and the throwaway Postgres cluster's postmaster (its backends are its children)."""
    import os

    roots = [os.getpid()]
    pg = getattr(getattr(harness, "stack", None), "postgres", None)
    if pg is not None:
        try:
            roots.append(int((pg.root / "data" / "postmaster.pid").read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return roots


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a terminated run still stops its Postgres cluster and servers (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from bench import machine, targets
    from local.sample_images import noise_png

    def repeat(default: int, quick: int) -> int:
        return args.repeat or (quick if args.quick else default)

    started = time.time()
    load_before = machine.load_average()
    results: dict = {}
    reports: list[str] = []
    harness = None
    pg_version = None
    png = noise_png(260, 260)  # ~203 KB, incompressible
    cpu_rows = []
    try:
        if NEEDS_STACK & set(args.only):
            from bench.harness import Harness

            harness = Harness()
            harness.rt_pairs = 2 if args.quick else 4
            pg_version = harness.postgres_version()
        meter = machine.CpuMeter(_our_roots(harness))
        for name in SECTIONS + ON_REQUEST:
            if name not in args.only:
                continue
            t = time.time()
            section_load = machine.load_average().split()[0]
            meter.start()
            if name == "overhead":
                from bench import overhead

                results[name] = overhead.run(harness, repeat(20, 8), png)
                reports.append(overhead.report(results[name]))
            elif name == "growth":
                from bench import growth

                windows = growth.QUICK_WINDOWS if args.quick else growth.FULL_WINDOWS
                results[name] = growth.run(harness, windows, turn10_samples=repeat(20, 8))
                reports.append(growth.report(results[name]))
            elif name == "history":
                from bench import history

                results[name] = history.run(harness, repeat(30, 10), png)
                reports.append(history.report(results[name]))
            elif name == "bytes":
                from bench import media_bytes

                results[name] = media_bytes.run(harness, turns=10 if args.quick else 30,
                                                agno_turns=3 if args.quick else 5)
                reports.append(media_bytes.report(results[name]))
            elif name == "rollup":
                from bench import rollup_bench

                rows = 100_000 if args.quick else 1_000_000
                results[name] = rollup_bench.run(harness, rows, full_reps=min(repeat(3, 2), 3),
                                                 incremental_reps=min(repeat(5, 3), 5))
                reports.append(rollup_bench.report(results[name]))
            elif name == "cold_start":
                from bench import cold_start

                results[name] = cold_start.run(repeat(5, 3))
                reports.append(cold_start.report(results[name]))
            elif name == "built":
                from bench import built

                results[name] = built.run(repeat(5, 3))
                reports.append(built.report(results[name]))
            elif name == "messages":
                from bench import messages

                results[name] = messages.run(harness, repeat(20, 10), png)
                reports.append(messages.report(results[name]))
            elif name == "events":
                from bench import events

                results[name] = events.run(harness, repeat(12, 8))
                reports.append(events.report(results[name]))
            elif name == "conversation":
                from bench import conversation

                results[name] = conversation.run(harness)
                reports.append(conversation.report(results[name]))
            elif name == "estimate":
                from bench import estimate

                results[name] = estimate.run(harness)
                reports.append(estimate.report(results[name]))
            elif name == "memory":
                from bench import memory

                results[name] = memory.run(harness)
                reports.append(memory.report(results[name]))
            elif name == "photos":
                from bench import photos

                results[name] = photos.run()
                reports.append(photos.report(results[name]))
            elif name == "ttfb":
                from bench import ttfb

                results[name] = ttfb.run(harness, repeat(20, 8), png)
                reports.append(ttfb.report(results[name]))
            elif name == "scale":
                from bench import scale

                results[name] = scale.run(harness, quick=args.quick)
                reports.append(scale.report(results[name]))
            cpu = meter.stop()
            cpu_rows.append([name, f"{time.time() - t:.0f}", section_load, f"{cpu['ours_pct']:.0f}%",
                             f"{cpu['other_pct']:.0f}%"])
            say(f"bench: {name} done in {time.time() - t:.0f} s")
    finally:
        if harness is not None:
            harness.stop()

    print("MACHINE")
    rows = machine.conditions(pg_version)
    rows = [(k, v) for k, v in rows if k != "load average (1/5/15 min)"]
    rows.append(("load average at start / end", f"{load_before}  /  {machine.load_average()}"))
    if harness is not None:
        rows.append(("database", "throwaway local cluster (fsync=off), one connection per process (DB_POOL_MAX=1)"
                     if harness.stack.postgres is not None else "DATABASE_URL"))
        rows.append(("model", "the local stand-in (default replies, instant; TCP_NODELAY set by the bench), "
                              "in this process"))
    rows.append(("mode", ("quick" if args.quick else "full") + f"; sections: {', '.join(args.only)}; "
                 f"{time.time() - started:.0f} s in all"))
    print(table(["", ""], rows, left=2))
    print("\n  CPU per section (share of all cores; 'others' = processes outside this benchmark and its Postgres)")
    print(table(["section", "seconds", "load at start", "benchmark", "others"], cpu_rows))
    for r in reports:
        print(r)
    print()
    print(targets.report(results, quick=args.quick))
    if "scale" in results:
        from bench import scale

        try:
            scale.check(results["scale"])
        except scale.RatioExceeded as over:
            say(f"bench: scale: over {scale.LIMIT}x at the larger size: {', '.join(over.names)}")
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
