-- 0005 one-hour prompt cache writes: Anthropic bills a cache write with a one-hour TTL at its own rate
-- (2x input where a 5-minute write is 1.25x), so a priced row records how many of its
-- cache_write_tokens were one-hour writes; its cost_usd already prices them (PROMPT_CACHE_TTL=1h).
ALTER TABLE chat_events ADD COLUMN cache_write_1h_tokens integer NOT NULL DEFAULT 0
    CONSTRAINT chat_events_cache_write_1h_within CHECK (cache_write_1h_tokens BETWEEN 0 AND cache_write_tokens);
