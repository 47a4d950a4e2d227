-- 0004 deleted_session_usage: deleting a session removes its messages, runs and images, but not
-- what it cost. Its usage is kept here, aggregated per UTC day, agent or team and model, with no
-- content, so budgets, the usage endpoint and the daily rollup still count it (a user cannot
-- escape a budget by deleting sessions, and history of spend is never rewritten).
CREATE TABLE deleted_session_usage (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id          uuid NOT NULL,             -- the deleted session's id (no row refers to it)
    deleted_at          timestamptz NOT NULL DEFAULT now(),
    day                 date NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('agent', 'team')),
    name                text NOT NULL,
    model_id            text NOT NULL,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cache_read_tokens   bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    cost_usd            numeric(24, 10) NOT NULL DEFAULT 0,
    cost_in_rands       numeric(24, 10) NOT NULL DEFAULT 0,
    turns               integer NOT NULL DEFAULT 0,
    failed_turns        integer NOT NULL DEFAULT 0
);
CREATE INDEX deleted_session_usage_user_day ON deleted_session_usage (user_id, day);
CREATE INDEX deleted_session_usage_day ON deleted_session_usage (day);
