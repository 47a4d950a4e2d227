-- 0011 memories: what the assistant remembers about a user across sessions. Written by the model
-- itself during a turn (its remember, update_memory and forget_memory tools, chatcore.turns.memory),
-- seen and changed by the user (GET, PATCH, DELETE /me/memories), recalled at the start of every
-- session (chatcore.memory.facts), consolidated by a priced model call when they outgrow
-- MEMORY_MAX_TOKENS or MEMORY_MAX_COUNT. They belong to the user, not to a session: deleting the
-- session that wrote one (or the retention period) keeps it; deleting the account deletes them.
CREATE TABLE memories (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text        text NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    -- the text normalised (case, spacing, punctuation): the same fact stated twice is one memory
    fact_key    text NOT NULL,
    -- the session and the run (a turn, or the consolidation run of a turn) that wrote it; NULL once
    -- that session is deleted (the memory stays)
    session_id  uuid REFERENCES sessions(id) ON DELETE SET NULL,
    run_id      uuid REFERENCES runs(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT memories_one_per_fact UNIQUE (user_id, fact_key)
);
CREATE INDEX memories_user ON memories (user_id, id);
-- what deleting a session or a run looks up (ON DELETE SET NULL)
CREATE INDEX memories_session ON memories (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX memories_run ON memories (run_id) WHERE run_id IS NOT NULL;

-- The user's switch (PUT /me/settings {"memory": false}: nothing written, nothing recalled), and a
-- version moved by every change that must reach sessions already under way (an edit, a deletion,
-- the switch); adding a memory does not move it.
ALTER TABLE users ADD COLUMN memory_enabled boolean NOT NULL DEFAULT true,
                  ADD COLUMN memory_version integer NOT NULL DEFAULT 0;

-- What a session recalls: the user's memories as rendered for its first turn, sent again byte for
-- byte by every later turn (so the prompt cache keeps reading the session's history), until the
-- user's memory_version moves past the one it was rendered at. NULL: not rendered yet.
ALTER TABLE sessions ADD COLUMN memory_snapshot text,
                     ADD COLUMN memory_version integer;
