-- 0016 thinking: Claude's extended thinking, stored with the message that produced it.
--
-- An assistant message's thinking blocks (their text and signature, redacted ones too) are in its
-- message_parts already, byte-exact (provider_data.content_blocks, replayed to the model as they
-- came). reasoning_tokens is the part of the row's output_tokens spent thinking: the Messages API
-- bills thinking as output and reports no split, so it is our estimate from the blocks (never more
-- than output_tokens); the row's cost already includes it, priced as output.
ALTER TABLE chat_events ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0
    CHECK (reasoning_tokens >= 0);
