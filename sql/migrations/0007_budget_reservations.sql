-- 0007 hard budgets: a running turn holds a reservation of its most possible cost in rands (its
-- input estimate and max_tokens of output for each model call it may make), counted against the
-- user's monthly budget with their spend and their other running turns' reservations; the
-- reservation is released (0) when the turn is stored or closed.
ALTER TABLE runs ADD COLUMN reserved_zar numeric(20, 10) NOT NULL DEFAULT 0
    CONSTRAINT runs_reserved_zar_not_negative CHECK (reserved_zar >= 0);
