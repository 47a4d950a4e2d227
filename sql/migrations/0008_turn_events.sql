-- 0008 resumable turns and the stop button.
-- A turn's server-sent events, written in batches while it runs, so a client that lost its stream
-- resumes it from any instance (GET /sessions/{id}/turns/{run_id}/events, Last-Event-ID). `data`
-- is the event's JSON exactly as it was sent (text, not jsonb: a replay sends the same bytes).
-- Finished turns' events are pruned by the scheduled function after EVENT_RETENTION_HOURS.
CREATE TABLE turn_events (
    run_id      uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq         integer NOT NULL CHECK (seq > 0),
    event       text NOT NULL,
    data        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

-- POST .../cancel records the request; the running turn reads it with its next batch of events.
ALTER TABLE runs ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'cancelled'));
CREATE INDEX runs_finished ON runs (finished_at) WHERE parent_run_id IS NULL;

-- A model call's usage the provider did not report (a stream aborted by a stop or a cut
-- connection): the row carries our estimate, marked as such.
ALTER TABLE chat_events ADD COLUMN usage_estimated boolean NOT NULL DEFAULT false;
