-- 0020 the history read by size: a turn reads the turns its model input can hold, not a fixed count.
--
-- message_history_tokens(message_parts) is a lower bound of what a stored message adds to a model
-- request in chatcore.turns.context's own estimate (message_tokens: 8 tokens of framing and a token
-- per 4 characters of its text, tool calls or the model's replayed content blocks), photos and PDF
-- pages left out (the context builder may leave those out of the model's copy). A model's message
-- that said nothing (a stopped turn's aborted call, which the turn skips) counts 0. jsonb's text of
-- a value is never longer than Python's json.dumps of it but for number formats (rare; the read
-- takes a margin on top of the budget).
--
-- runs.history_tokens is the sum over a run's own messages, written when the run finishes
-- (FINISH_RUN); NULL for a run that has not, or whose messages were written some other way: the
-- history read counts NULL as 0, so such a run is always read (never left out by mistake).
CREATE FUNCTION message_history_tokens(parts jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN parts->>'role' = 'assistant'
         AND coalesce(parts->'content', 'null'::jsonb) IN ('null'::jsonb, '""'::jsonb, '[]'::jsonb, '{}'::jsonb)
         AND coalesce(parts->'tool_calls', 'null'::jsonb) IN ('null'::jsonb, '[]'::jsonb)
        THEN 0
    WHEN parts->>'role' = 'assistant' AND jsonb_typeof(parts->'provider_data'->'content_blocks') = 'array'
         AND jsonb_array_length(parts->'provider_data'->'content_blocks') > 0
        THEN 8 + (length((parts->'provider_data'->'content_blocks')::text) + 3) / 4
    ELSE 8 + (CASE jsonb_typeof(parts->'content')
                  WHEN 'string' THEN length(parts->>'content')
                  WHEN 'null' THEN 0
                  ELSE coalesce(length((parts->'content')::text), 0) END
              + CASE WHEN jsonb_typeof(parts->'tool_calls') = 'array' AND jsonb_array_length(parts->'tool_calls') > 0
                     THEN length((parts->'tool_calls')::text) ELSE 0 END + 3) / 4
END;

ALTER TABLE runs ADD COLUMN history_tokens integer;

-- The turns already stored (finished ones; a running or paused one is measured when it finishes).
UPDATE runs r SET history_tokens = (SELECT coalesce(sum(message_history_tokens(ce.message_parts)), 0)
                                    FROM chat_events ce WHERE ce.run_id = r.id)
WHERE r.parent_run_id IS NULL AND r.status NOT IN ('running', 'paused');

-- The history read walks a session's top-level turns newest first, summing history_tokens: an
-- index-only scan of this index (status and error_code decide which turns are history).
CREATE INDEX runs_history ON runs (session_id, id) INCLUDE (status, error_code, history_tokens)
    WHERE parent_run_id IS NULL;

-- A plan's tokens per day (chatcore.store.plans LIMIT_COUNTS) sums today's priced rows of the user's
-- sessions: the spend index now covers their tokens too, so that sum is an index-only scan like the
-- month's spend (it fetched every row of the day from the table: 1.7 ms for 2,000 rows of a day).
DROP INDEX chat_events_session_spend;
CREATE INDEX chat_events_session_spend ON chat_events (session_id, created_at)
    INCLUDE (cost_in_rands, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens)
    WHERE cost_in_rands <> 0;
