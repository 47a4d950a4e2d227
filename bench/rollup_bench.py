"""5. Rollup: ``chatcore.money.rollup`` over generated messages (the messages table,
chat_events: 1,000,000; 100,000 with --quick).

A fresh database (``create_database`` + the migrations) is filled with ``INSERT ... SELECT
generate_series``: 2,000 users, 20,000 sessions (one in ten with the team), one turn (a runs row)
per four messages spread over the last 30 UTC days (user, priced assistant, tool, priced
assistant; 3% of turns failed), ids UUIDv7 of their creation time as the application makes them.
Foreign-key triggers are off during the load only (``session_replication_role = replica``); then
VACUUM ANALYZE.

- full: ``rollup.rollup(conn, first_day, last_day)`` (every day, one transaction).
- incremental: the first ``rollup.incremental`` (no watermark: every day), then repeatedly: a batch
  of new turns (1,000 turns, 4,000 rows) lands today, then ``rollup.incremental`` (today and
  yesterday plus days touched since the watermark).
Agno has no equivalent over its runs (its metrics are computed from whole sessions): n/a.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.harness import Harness, say
from bench.stats import median, p90, table

DAYS = 30
USERS = 2_000
SESSIONS = 20_000
BATCH_TURNS = 1_000

UUID7 = """
CREATE OR REPLACE FUNCTION bench_uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
SELECT (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0')
        || '7' || lpad(to_hex(floor(random() * 4096)::int), 3, '0')
        || to_hex(8 + floor(random() * 4)::int) || lpad(to_hex(floor(random() * 4096)::int), 3, '0')
        || lpad(to_hex(floor(random() * 4294967296)::bigint), 8, '0')
        || lpad(to_hex(floor(random() * 65536)::int), 4, '0'))::uuid
$$
"""

CATALOG = """
INSERT INTO agents (id, name, description, model_provider_slug, model_id) VALUES
  (bench_uuid7(now() - interval '60 days'), 'assistant', '', 'anthropic', 'claude-sonnet-5-5'),
  (bench_uuid7(now() - interval '60 days'), 'calculator', '', 'anthropic', 'claude-haiku-5-5');
INSERT INTO teams (id, name, description, model_provider_slug, model_id) VALUES
  (bench_uuid7(now() - interval '60 days'), 'planner', '', 'anthropic', 'claude-sonnet-5-5');
INSERT INTO users (id, sub)
  SELECT bench_uuid7(now() - interval '50 days'), 'bench-user-' || g FROM generate_series(1, %(users)s) g;
CREATE TABLE bench_users AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM users;
INSERT INTO sessions (id, user_id, agent_id, team_id, created_at, updated_at)
  SELECT bench_uuid7(now() - interval '40 days'), u.id,
         CASE WHEN g %% 10 = 0 THEN NULL ELSE (SELECT id FROM agents WHERE name = 'assistant') END,
         CASE WHEN g %% 10 = 0 THEN (SELECT id FROM teams WHERE name = 'planner') END,
         now() - interval '40 days', now()
  FROM generate_series(1, %(sessions)s) g JOIN bench_users u ON u.n = 1 + g %% %(users)s;
CREATE TABLE bench_sessions AS
  SELECT id, team_id IS NOT NULL AS team, row_number() OVER (ORDER BY id) AS n FROM sessions;
CREATE INDEX ON bench_sessions (n);
"""

# Turns started between ``start`` and ``start + span`` (seconds), g = 1..turns.
TURNS = """
INSERT INTO runs (id, session_id, agent_name, status, error_code, input_tokens, output_tokens,
                  cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, started_at, finished_at)
SELECT bench_uuid7(t.started_at), s.id, CASE WHEN s.team THEN 'planner' ELSE 'assistant' END,
       CASE WHEN t.g %% 33 = 0 THEN 'failed' ELSE 'completed' END,
       CASE WHEN t.g %% 33 = 0 THEN 'model-error' END,
       2400, 180, 9000, 300, 0.0161000000, 0.2898000000, t.started_at, t.started_at + interval '4 seconds'
FROM (SELECT g, %(start)s::timestamptz + (random() * %(span)s) * interval '1 second' AS started_at
      FROM generate_series(1, %(turns)s) g) t
JOIN bench_sessions s ON s.n = 1 + (hashint4(t.g + %(salt)s)::bigint & 2147483647) %% %(sessions)s
RETURNING id
"""

MESSAGES = """
INSERT INTO chat_events (id, session_id, run_id, role, agent_name, model_provider_slug, model_id, message_parts,
                         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd,
                         cost_in_rands, fx_rate, fx_rate_date, created_at)
SELECT bench_uuid7(r.started_at + k * interval '1 second'), r.session_id, r.id,
       (ARRAY['user', 'assistant', 'tool', 'assistant'])[k + 1],
       r.agent_name,
       CASE WHEN k IN (1, 3) THEN 'anthropic' END,
       CASE WHEN k IN (1, 3) THEN (CASE WHEN r.agent_name = 'planner' AND k = 3 THEN 'claude-haiku-5-5'
                                        ELSE 'claude-sonnet-5-5' END) END,
       jsonb_build_object('role', (ARRAY['user', 'assistant', 'tool', 'assistant'])[k + 1],
                          'content', 'What is 12 * 7? The answer is 84.', 'id', gen_random_uuid()::text),
       CASE WHEN k IN (1, 3) THEN 1200 ELSE 0 END, CASE WHEN k IN (1, 3) THEN 90 ELSE 0 END,
       CASE WHEN k IN (1, 3) THEN 4500 ELSE 0 END, CASE WHEN k IN (1, 3) THEN 150 ELSE 0 END,
       CASE WHEN k IN (1, 3) THEN 0.0080500000 ELSE 0 END, CASE WHEN k IN (1, 3) THEN 0.1449000000 ELSE 0 END,
       CASE WHEN k IN (1, 3) THEN 18.0000000000 END, CASE WHEN k IN (1, 3) THEN r.started_at::date END,
       r.started_at + k * interval '1 second'
FROM runs r CROSS JOIN generate_series(0, 3) k
WHERE r.id = ANY(%(run_ids)s)
"""


def _add_turns(conn, turns: int, start: datetime, span_s: float, salt: int) -> int:
    """Insert ``turns`` runs and their 4 messages each; returns the messages written."""
    run_ids = [r["id"] for r in conn.execute(TURNS, {"start": start, "span": span_s, "turns": turns,
                                                      "sessions": SESSIONS, "salt": salt}).fetchall()]
    return conn.execute(MESSAGES, {"run_ids": run_ids}).rowcount


def run(h: Harness, rows: int, full_reps: int, incremental_reps: int) -> dict:
    import psycopg

    from chatcore import db, migrate
    from chatcore.money import rollup

    if h.stack.postgres is None:
        raise RuntimeError("the rollup benchmark needs the throwaway cluster (unset DATABASE_URL)")
    name = f"bench_rollup_{uuid.uuid4().hex[:8]}"
    url = h.stack.postgres.create_database(name)
    with psycopg.connect(url, autocommit=True) as c:
        migrate.apply(c, migrate.default_dir())
    conn = db.connect(url)
    try:
        say(f"bench: rollup, generating {rows:,} messages over {DAYS} days")
        t = time.time()
        conn.execute(UUID7)
        for statement in CATALOG.split(";\n"):
            if statement.strip():
                conn.execute(statement, {"users": USERS, "sessions": SESSIONS})
        now = conn.execute("SELECT now() AS n").fetchone()["n"]
        start = now - timedelta(days=DAYS - 1, hours=now.hour, minutes=now.minute, seconds=now.second)
        span = (now - start).total_seconds() - 60
        written = 0
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            chunk = 50_000
            salt = 0
            while written < rows:
                turns = min(chunk, (rows - written) // 4)
                written += _add_turns(conn, turns, start, span, salt)
                salt += turns
        conn.execute("VACUUM ANALYZE")
        gen_s = time.time() - t
        total = conn.execute("SELECT count(*) AS n FROM chat_events").fetchone()["n"]
        first_day = start.astimezone(UTC).date()
        last_day = now.astimezone(UTC).date()
        say(f"bench: rollup, {total:,} rows in {gen_s:.0f} s; full rollups x{full_reps}")
        full_s = []
        for _ in range(full_reps):
            t = time.perf_counter()
            result = rollup.rollup(conn, first_day, last_day)
            full_s.append(time.perf_counter() - t)
        check = conn.execute("""SELECT (SELECT sum(cost_usd) FROM daily_costs) AS rolled,
                                       (SELECT sum(cost_usd) FROM chat_events) AS direct""").fetchone()
        if check["rolled"] != check["direct"]:
            raise RuntimeError(f"rollup check failed: {check}")
        t = time.perf_counter()
        first_inc = rollup.incremental(conn)
        first_inc_s = time.perf_counter() - t
        inc_s, inc_days = [], []
        say(f"bench: rollup, incremental x{incremental_reps}")
        for i in range(incremental_reps):
            new_rows = _add_turns(conn, BATCH_TURNS, datetime.now(UTC) - timedelta(minutes=5), 240, 10_000_000 + i)
            conn.execute("ANALYZE chat_events")  # what autovacuum would do; keeps the plans of a steady state
            t = time.perf_counter()
            inc = rollup.incremental(conn)
            inc_s.append(time.perf_counter() - t)
            inc_days.append(len(inc.days))
        first_recomputed = datetime.combine(inc.days[0], datetime.min.time(), tzinfo=UTC)
        inc_rows = conn.execute("SELECT count(*) AS n FROM chat_events WHERE created_at >= %s",
                                (first_recomputed,)).fetchone()["n"]
        return {"rows": total, "days": DAYS, "generate_s": gen_s, "full_s": full_s, "full_rows": result.rows,
                "first_incremental_s": first_inc_s, "first_incremental_days": len(first_inc.days),
                "incremental_s": inc_s, "incremental_days": max(inc_days), "batch_rows": new_rows,
                "incremental_rows": inc_rows}
    finally:
        conn.close()


def report(res: dict) -> str:
    lines = ["", f"5. ROLLUP ({res['rows']:,} messages over {res['days']} days, generated in "
             f"{res['generate_s']:.0f} s; seconds)"]
    rows = [
        [f"full: rollup(first day, last day), {res['full_rows']:,} daily_costs rows", f"{median(res['full_s']):.2f}",
         f"{max(res['full_s']):.2f}", str(len(res["full_s"]))],
        [f"first incremental (no watermark: {res['first_incremental_days']} days)",
         f"{res['first_incremental_s']:.2f}", "", "1"],
        [f"incremental after {res['batch_rows']:,} new rows today ({res['incremental_days']} days, "
         f"{res['incremental_rows']:,} messages, recomputed)",
         f"{median(res['incremental_s']):.2f}", f"{p90(res['incremental_s']):.2f}", str(len(res["incremental_s"]))],
    ]
    lines.append(table(["", "median", "max/p90", "runs"], rows))
    lines.append("  Agno: n/a (no rollup over its runs; its metrics are recomputed from whole sessions)")
    return "\n".join(lines)
