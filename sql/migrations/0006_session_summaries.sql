-- 0006 session summaries: the turns that no longer fit the model's context budget are summarised
-- (a priced model call, stored as a 'compaction' run of the turn that made it), and the summary is
-- what the model reads in their place. Extended in steps, never rewritten each turn. The stored
-- messages themselves are never changed or deleted by it.
CREATE TABLE session_summaries (
    session_id          uuid PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    summary             text NOT NULL,
    through_message_id  uuid NOT NULL,      -- the last chat_events row (by id) the summary covers
    turns               integer NOT NULL,   -- how many turns it covers in all
    run_id              uuid NOT NULL,      -- the compaction run that wrote it
    updated_at          timestamptz NOT NULL DEFAULT now()
);
