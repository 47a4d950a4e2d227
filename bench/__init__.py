"""Benchmarks of the turn path, storage, history, media bytes, rollup and cold start (`bin/bench`).

Each section prints its figures (medians and p90 over repeated runs) side by side with Agno's own
``agno.db.postgres.PostgresDb`` doing the same work in the same run; ``bench.targets`` holds the
target each figure is held to and the final PASS/MISS table. See docs/benchmarks.md.
"""
