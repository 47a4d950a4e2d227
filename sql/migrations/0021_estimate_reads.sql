-- 0021 the estimate's reads by agent or team (chatcore.store.turns: ESTIMATE_CALLS, FIRST_CALL_OF_AGENT),
-- and the minute's turns of deleted sessions.
-- A session's first estimate walks the newest sessions of its agent or team (a session has exactly
-- one of the two: coalesce(agent_id, team_id) names it), newest first, to the first that has a
-- completed turn; without an index that read every session. And the agent's (or team's) calls per
-- turn average its last completed top-level turns, anyone's, found by the runs' agent_name.
-- Plain CREATE INDEX: each migration runs in one transaction (chatcore/migrate.py).
CREATE INDEX sessions_conversation ON sessions ((coalesce(agent_id, team_id)), id DESC);
CREATE INDEX runs_agent_recent ON runs (agent_name, id DESC) WHERE parent_run_id IS NULL AND status = 'completed';

-- Turns per minute count the turns of sessions deleted within the minute too (a script that deletes
-- each session after its turn escapes the limit otherwise): a session's deletion keeps the starts of
-- its turns of the last minute here, and drops those older than a minute (chatcore.store.plans:
-- KEEP_TURN_STARTS, LIMIT_COUNTS). On the users row the turn's first statement reads already: no
-- further lookup. Deleted with the account (its users row).
ALTER TABLE users ADD COLUMN deleted_turn_starts timestamptz[] NOT NULL DEFAULT '{}';
