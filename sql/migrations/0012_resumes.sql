-- 0012 resumes that end. A turn's stream has exactly one final event (TurnCompleted, TurnFailed or
-- TurnCancelled): the one its process stored, or, when it stored none (its process died, or the
-- database was down as it ended), the one the first resume rebuilt from its run and stored. Every
-- replay then sends that same event, byte for byte, with the same id; nothing is ever made up after
-- it. The scheduled pruning of a finished turn's events keeps it.
CREATE UNIQUE INDEX turn_events_one_final ON turn_events (run_id)
    WHERE event IN ('TurnCompleted', 'TurnFailed', 'TurnCancelled');
