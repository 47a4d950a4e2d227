-- 0014 approvals: agents that act only with the user's consent.
--
-- A tool that acts (set_reminder) needs the user's approval: when the model calls it, the turn pauses.
-- The run is stored `paused` with everything needed to continue: its messages so far (the assistant
-- message with the tool_use blocks is a row like any other), its costs so far (billed and stored at
-- the pause), and one `approvals` row per pending call. Nothing is held while it is paused: no
-- process, no connection, no lock. POST .../approvals takes it from `paused` back to `running` with
-- one conditional UPDATE (the loser of two decisions at once gets 409), and the continuation is
-- stored as the same run's messages. A pause older than APPROVAL_TTL ends `expired` (nothing runs).
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'paused', 'expired'));
-- paused_at: when the run last paused (APPROVAL_TTL counts from it); resumed_at: when its
-- continuation began (a continued run is stale STALE_TURN_SECONDS after that, not after started_at,
-- which stays the day the turn is counted for).
ALTER TABLE runs ADD COLUMN paused_at timestamptz,
                 ADD COLUMN resumed_at timestamptz;
-- at most one paused turn per session (a new message meanwhile is 409 turn-paused)
CREATE UNIQUE INDEX runs_one_paused ON runs (session_id) WHERE status = 'paused' AND parent_run_id IS NULL;
CREATE INDEX runs_paused_at ON runs (paused_at) WHERE status = 'paused';

-- One pending tool call of a paused run, then the user's decision on it. `run_id` is the turn (the
-- top-level run); `call_run_id` the run that made the call (the turn's own, or a team member's).
-- The summary is written by the tool's spec from the arguments, never by the model.
CREATE TABLE approvals (
    run_id        uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tool_call_id  text NOT NULL,
    call_run_id   uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    agent_name    text,
    tool          text NOT NULL,
    arguments     jsonb NOT NULL,
    summary       text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'declined', 'expired', 'cancelled')),
    note          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    PRIMARY KEY (run_id, tool_call_id)
);
CREATE INDEX approvals_call_run ON approvals (call_run_id);

-- What set_reminder writes once the user approved it. A reminder belongs to the user (like a
-- memory): deleting the session that set it (or the retention period) keeps it; deleting the
-- account deletes it. (run_id, tool_call_id) is unique: a continuation tried twice writes it once.
CREATE TABLE reminders (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text          text NOT NULL CHECK (length(text) BETWEEN 1 AND 500),
    due_at        timestamptz NOT NULL,
    time_zone     text NOT NULL,
    session_id    uuid REFERENCES sessions(id) ON DELETE SET NULL,
    run_id        uuid REFERENCES runs(id) ON DELETE SET NULL,
    tool_call_id  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reminders_one_per_call UNIQUE (run_id, tool_call_id)
);
CREATE INDEX reminders_user ON reminders (user_id, id);
CREATE INDEX reminders_session ON reminders (session_id) WHERE session_id IS NOT NULL;
