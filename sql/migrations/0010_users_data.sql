-- 0010 users' data: deleting an account (DELETE /me), exporting it (POST and GET /me/export), and
-- the retention period (RETENTION_DAYS). What a deleted account leaves is its usage, aggregated per
-- UTC day, agent or team and model, with no content and no user (user_id NULL).

-- An account being deleted. The request detaches the users row from its sub at once (users.sub
-- becomes 'deleted:<this id>'), so nothing of the account is readable from then on and the same sub
-- starts a new, empty account; this row keeps the sub (to poll and to resume the deletion) until
-- the users row itself is deleted, which deletes this row too: nothing of the account remains.
CREATE TABLE account_deletions (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    sub              text NOT NULL,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,   -- passes made at it (a pass waits for running turns)
    last_attempt_at  timestamptz,
    last_error       text
);
CREATE INDEX account_deletions_sub ON account_deletions (sub);

-- An export of everything stored about a user: a zip in S3 under <MEDIA_PREFIX>exports/, built by
-- the account function, readable through a short-lived presigned URL until expires_at (a day after
-- it is ready); the scheduled function then deletes the zip and the row (and the bucket's
-- lifecycle rule deletes what is under exports/ after a day, whatever happens).
CREATE TABLE exports (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status        text NOT NULL CHECK (status IN ('building', 'ready', 'failed')),
    key           text,                    -- the zip's S3 key, once ready
    size          bigint,                  -- its bytes
    contents      jsonb,                   -- what it holds: counts of sessions, messages, photos...
    error         text,                    -- why it failed (no content)
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    expires_at    timestamptz
);
CREATE INDEX exports_user ON exports (user_id, requested_at DESC);
CREATE INDEX exports_expiry ON exports (expires_at);

-- A deleted account's kept usage belongs to no one: deleted_session_usage rows and daily_costs rows
-- with user_id NULL (and no session). daily_costs keeps one row per key, NULL user included.
ALTER TABLE deleted_session_usage ALTER COLUMN user_id DROP NOT NULL,
                                  ALTER COLUMN session_id DROP NOT NULL;
ALTER TABLE daily_costs DROP CONSTRAINT daily_costs_pkey;
ALTER TABLE daily_costs ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE daily_costs ADD CONSTRAINT daily_costs_key UNIQUE NULLS NOT DISTINCT (day, user_id, kind, name, model_id);

-- Retention: sessions by last activity, across users.
CREATE INDEX sessions_activity ON sessions (updated_at);
