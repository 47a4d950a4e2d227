-- 0021 the estimate's reads by agent or team (chatcore.store.turns: ESTIMATE_CALLS, FIRST_CALL_OF_AGENT),
-- and the minute's turns of deleted sessions.
-- The agent's (or team's) last completed top-level turns, anyone's, by the runs' agent_name, newest
-- first: the calls per turn an estimate averages, and (walked to the first that is its session's
-- first turn) a session's first estimate. Before, that one walked every session (no index on
-- sessions.agent_id / team_id).
-- Plain CREATE INDEX: each migration runs in one transaction (chatcore/migrate.py).
CREATE INDEX runs_agent_recent ON runs (agent_name, id DESC) WHERE parent_run_id IS NULL AND status = 'completed';

-- Turns per minute count the turns of sessions deleted within the minute too (a script that deletes
-- each session after its turn escapes the limit otherwise): a session's deletion keeps the starts of
-- its turns of the last minute here, and drops those older than a minute (chatcore.store.plans:
-- KEEP_TURN_STARTS, LIMIT_COUNTS). On the users row the turn's first statement reads already: no
-- further lookup. Deleted with the account (its users row).
ALTER TABLE users ADD COLUMN deleted_turn_starts timestamptz[] NOT NULL DEFAULT '{}';
