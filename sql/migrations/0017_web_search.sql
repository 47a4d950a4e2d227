-- 0017 web search: Anthropic's web search server tool, billed per search on top of tokens.
--
-- A message's search blocks (server_tool_use, web_search_tool_result with its encrypted content) and
-- its answer's citations are in its message_parts already, byte-exact (provider_data.content_blocks,
-- replayed to the model as they came). web_searches is the searches the model call made (the API's
-- usage.server_tool_use.web_search_requests); web_search_cost_usd / web_search_cost_in_rands is
-- their part of the row's cost_usd / cost_in_rands (the price data's per-search price, pinned like
-- token prices). The rollup and the kept usage of deleted sessions carry the same three columns.
ALTER TABLE chat_events
    ADD COLUMN web_searches integer NOT NULL DEFAULT 0 CHECK (web_searches >= 0),
    ADD COLUMN web_search_cost_usd numeric(24, 10) NOT NULL DEFAULT 0,
    ADD COLUMN web_search_cost_in_rands numeric(24, 10) NOT NULL DEFAULT 0;
ALTER TABLE daily_costs
    ADD COLUMN web_searches integer NOT NULL DEFAULT 0,
    ADD COLUMN web_search_cost_usd numeric(24, 10) NOT NULL DEFAULT 0,
    ADD COLUMN web_search_cost_in_rands numeric(24, 10) NOT NULL DEFAULT 0;
ALTER TABLE deleted_session_usage
    ADD COLUMN web_searches integer NOT NULL DEFAULT 0,
    ADD COLUMN web_search_cost_usd numeric(24, 10) NOT NULL DEFAULT 0,
    ADD COLUMN web_search_cost_in_rands numeric(24, 10) NOT NULL DEFAULT 0;
