-- 0002 mobile_api: list a user's sessions by last activity, newest first, with a stable cursor.
CREATE INDEX sessions_user_activity ON sessions (user_id, updated_at DESC, id DESC);
-- chat_events per user and day for the usage endpoint go through sessions; runs by status for history.
CREATE INDEX runs_session_status ON runs (session_id, status) WHERE parent_run_id IS NULL;
