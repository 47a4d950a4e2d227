-- 0019 plans: what a user may do and spend (issue 27).
--
-- A plan names a monthly budget in rands (users.monthly_budget_zar, when set, overrides it), the
-- rate limits a turn is checked against in its first statement (turns per minute and per UTC day,
-- tokens per UTC day, turns running at once; NULL: no such limit), the agents and teams and the
-- models allowed (NULL: all) and whether thinking and web search are. Exactly one plan is the
-- default: a user without a plan of their own (users.plan_name NULL) is on it.
CREATE TABLE plans (
    name                text PRIMARY KEY CONSTRAINT plans_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    is_default          boolean NOT NULL DEFAULT false,
    monthly_budget_zar  numeric(14, 2) CONSTRAINT plans_budget_not_negative CHECK (monthly_budget_zar >= 0),
    turns_per_minute    integer CONSTRAINT plans_turns_per_minute_positive CHECK (turns_per_minute > 0),
    turns_per_day       integer CONSTRAINT plans_turns_per_day_positive CHECK (turns_per_day > 0),
    tokens_per_day      bigint CONSTRAINT plans_tokens_per_day_positive CHECK (tokens_per_day > 0),
    concurrent_turns    integer CONSTRAINT plans_concurrent_turns_positive CHECK (concurrent_turns > 0),
    agents              text[],
    models              text[],
    thinking_allowed    boolean NOT NULL DEFAULT true,
    web_search_allowed  boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default;

-- The default plan as deployed: no limits beyond the stage's own (an operator sets them with
-- python -m chatcore.money.plans define standard ...).
INSERT INTO plans (name, is_default) VALUES ('standard', true);

ALTER TABLE users ADD COLUMN plan_name text REFERENCES plans (name) ON UPDATE CASCADE;
-- A plan's users (the foreign key's lookups: a plan renamed or deleted).
CREATE INDEX users_plan_name ON users (plan_name);

-- What a running turn holds against its user's tokens per day until it is stored (like reserved_zar).
ALTER TABLE runs ADD COLUMN reserved_tokens bigint NOT NULL DEFAULT 0;

-- A user's turns started since a moment, across their sessions (the rate limits' count).
CREATE INDEX runs_started ON runs (session_id, started_at) WHERE parent_run_id IS NULL;

-- A month's budget crossed at 80 % and 100 %: one row each (the app reads them; the turn that
-- crossed it streamed a BudgetWarning). Deleted with the account.
CREATE TABLE budget_warnings (
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month               date NOT NULL,
    percent             integer NOT NULL CONSTRAINT budget_warnings_percent CHECK (percent IN (80, 100)),
    monthly_budget_zar  numeric(14, 2) NOT NULL,
    spent_zar           numeric(24, 10) NOT NULL,
    run_id              uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, month, percent)
);
