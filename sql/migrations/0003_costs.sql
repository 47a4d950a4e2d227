-- 0003 costs: daily cost rollup (and its watermark), logged re-pricing backfills, monthly budgets.
-- Days are UTC calendar days. Money is numeric, never float.

-- An optional monthly budget per user, in rands (NULL: no budget). Checked when a turn starts.
ALTER TABLE users ADD COLUMN monthly_budget_zar numeric(14, 2)
    CONSTRAINT users_monthly_budget_zar_not_negative CHECK (monthly_budget_zar >= 0);

-- The budget check sums a user's priced rows of the current month: per session of the user
-- (sessions_user_recent), an index-only range scan over the priced rows only.
CREATE INDEX chat_events_session_spend ON chat_events (session_id, created_at) INCLUDE (cost_in_rands)
    WHERE cost_in_rands <> 0;

-- Turns (top-level runs) by start time and by finish time, for the rollup.
CREATE INDEX runs_turn_started ON runs (started_at) WHERE parent_run_id IS NULL;
CREATE INDEX runs_turn_finished ON runs (finished_at) WHERE parent_run_id IS NULL;

-- Spend per UTC day, user, agent or team (what the session talks to: a team's member rows are
-- attributed to the team, with the member's model) and model. Derived from chat_events, runs and
-- sessions by chatcore.rollup, which recomputes whole days; never edit by hand.
CREATE TABLE daily_costs (
    day                 date NOT NULL,
    user_id             uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('agent', 'team')),
    name                text NOT NULL,             -- agents.name or teams.name
    model_id            text NOT NULL,             -- chat_events.model_id ('' for unpriced rows with usage)
    input_tokens        bigint NOT NULL DEFAULT 0, -- uncached input, as stored on chat_events
    output_tokens       bigint NOT NULL DEFAULT 0,
    cache_read_tokens   bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd            numeric(24, 10) NOT NULL DEFAULT 0,
    cost_in_rands       numeric(24, 10) NOT NULL DEFAULT 0,
    turns               integer NOT NULL DEFAULT 0, -- top-level runs started that day
    failed_turns        integer NOT NULL DEFAULT 0, -- of those, status 'failed'
    PRIMARY KEY (day, user_id, kind, name, model_id)
);
CREATE INDEX daily_costs_user_day ON daily_costs (user_id, day);

-- Where the incremental rollup got to: rows whose UUIDv7 id (their creation time) is later than
-- the watermark (less a safety overlap) mark their day for recomputation.
CREATE TABLE rollup_state (
    name            text PRIMARY KEY,
    watermark       timestamptz NOT NULL,
    last_run_at     timestamptz NOT NULL DEFAULT now(),
    last_days       integer NOT NULL DEFAULT 0
);

-- One row per re-pricing backfill (python -m chatcore.reprice): who, when, which days, what changed.
CREATE TABLE cost_backfills (
    id                  uuid PRIMARY KEY,
    performed_at        timestamptz NOT NULL DEFAULT now(),
    performed_by        text NOT NULL,
    reason              text,
    from_day            date NOT NULL,
    to_day              date NOT NULL,
    price_version       text NOT NULL,             -- prices.json version the rows were priced with
    rows_examined       integer NOT NULL,
    rows_changed        integer NOT NULL,
    runs_changed        integer NOT NULL,
    old_cost_usd        numeric(24, 10) NOT NULL,  -- totals over the examined rows, before and after
    new_cost_usd        numeric(24, 10) NOT NULL,
    old_cost_in_rands   numeric(24, 10) NOT NULL,
    new_cost_in_rands   numeric(24, 10) NOT NULL,
    CHECK (from_day <= to_day)
);
