-- 0012 resumes that end, and browsers that resume.
--
-- A turn's stream has exactly one final event (TurnCompleted, TurnFailed or TurnCancelled): the one
-- its process stored, or, when it stored none (its process died, or the database was down as it
-- ended), the one the first resume rebuilt from its run and stored. Every replay then sends that
-- same event, byte for byte, with the same id; nothing is ever made up after it. The scheduled
-- pruning of a finished turn's events keeps it.
CREATE UNIQUE INDEX turn_events_one_final ON turn_events (run_id)
    WHERE event IN ('TurnCompleted', 'TurnFailed', 'TurnCancelled');

-- A browser's EventSource cannot send an Authorization header, so it resumes a turn's stream with a
-- resume token in the query (GET .../events?token=...): short-lived (RESUME_TOKEN_SECONDS), for one
-- run of one user, asked for with the user's own token (POST .../resume-token). Only its SHA-256 is
-- kept: the token itself is never stored (nor logged), and a leaked table opens nothing. It goes
-- with its run (a deleted session) or its user (a deleted account); the scheduled run deletes
-- expired ones.
CREATE TABLE resume_tokens (
    token_hash  bytea PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX resume_tokens_expiry ON resume_tokens (expires_at);
CREATE INDEX resume_tokens_run ON resume_tokens (run_id);
CREATE INDEX resume_tokens_user ON resume_tokens (user_id);
