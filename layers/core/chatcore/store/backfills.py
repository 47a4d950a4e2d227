"""Re-pricing backfills: the priced rows of a range, with the rate in effect on each row's day;
their new costs; the run totals they change; the log row."""

from __future__ import annotations

from chatcore.store.rates import rate_in_effect

# Every priced row of [start, end), locked, with the USD/ZAR rate in effect on its UTC day.
ROWS_TO_PRICE = f"""
SELECT ce.id, ce.run_id, ce.model_id, ce.created_at, ce.input_tokens, ce.output_tokens, ce.cache_read_tokens,
       ce.cache_write_tokens, ce.cache_write_1h_tokens, ce.web_searches, ce.web_search_cost_usd, ce.web_search_cost_in_rands, ce.cost_usd, ce.cost_in_rands, ce.price_id, ce.fx_rate_id, ce.fx_rate, ce.fx_rate_date,
       fx.id AS new_fx_rate_id, fx.rate AS new_fx_rate, fx.effective_date AS new_fx_rate_date
FROM chat_events ce
LEFT JOIN {rate_in_effect("(ce.created_at AT TIME ZONE 'UTC')::date")} fx ON true
WHERE ce.created_at >= %(start)s AND ce.created_at < %(end)s AND ce.role = 'assistant' AND ce.model_id IS NOT NULL
ORDER BY ce.id
FOR UPDATE OF ce
"""

CREATE_CHANGES = """
CREATE TEMPORARY TABLE reprice_changes (
    id uuid PRIMARY KEY, cost_usd numeric(20, 10), cost_in_rands numeric(20, 10), price_id uuid,
    fx_rate_id uuid, fx_rate numeric(20, 10), fx_rate_date date,
    web_search_cost_usd numeric(24, 10), web_search_cost_in_rands numeric(24, 10)
) ON COMMIT DROP
"""

COPY_CHANGES = ("COPY reprice_changes (id, cost_usd, cost_in_rands, price_id, fx_rate_id, fx_rate, fx_rate_date, "
                "web_search_cost_usd, web_search_cost_in_rands) FROM STDIN")

APPLY_CHANGES = """
UPDATE chat_events ce SET cost_usd = c.cost_usd, cost_in_rands = c.cost_in_rands, price_id = c.price_id,
       fx_rate_id = c.fx_rate_id, fx_rate = c.fx_rate, fx_rate_date = c.fx_rate_date,
       web_search_cost_usd = c.web_search_cost_usd, web_search_cost_in_rands = c.web_search_cost_in_rands
FROM reprice_changes c WHERE ce.id = c.id
"""

# A turn's run totals its own rows and its member runs' rows; a member run its own rows.
RUN_TOTALS = """
WITH affected AS (
    SELECT DISTINCT coalesce(r.parent_run_id, r.id) AS id FROM runs r WHERE r.id = ANY(%(run_ids)s)
    UNION
    SELECT r.id FROM runs r WHERE r.id = ANY(%(run_ids)s)
), sources AS (
    SELECT a.id, a.id AS src FROM affected a
    UNION ALL
    SELECT a.id, c.id FROM affected a JOIN runs p ON p.id = a.id AND p.parent_run_id IS NULL
    JOIN runs c ON c.parent_run_id = p.id
), totals AS (
    SELECT s.id, coalesce(sum(ce.cost_usd), 0) AS usd, coalesce(sum(ce.cost_in_rands), 0) AS zar
    FROM sources s LEFT JOIN chat_events ce ON ce.run_id = s.src
    GROUP BY s.id
)
UPDATE runs r SET cost_usd = t.usd, cost_in_rands = t.zar
FROM totals t
WHERE r.id = t.id AND (r.cost_usd, r.cost_in_rands) IS DISTINCT FROM (t.usd, t.zar)
"""

INSERT_BACKFILL = """
INSERT INTO cost_backfills (id, performed_by, reason, from_day, to_day, price_version, rows_examined,
    rows_changed, runs_changed, old_cost_usd, new_cost_usd, old_cost_in_rands, new_cost_in_rands)
VALUES (%(id)s, %(performed_by)s, %(reason)s, %(from_day)s, %(to_day)s, %(price_version)s, %(rows_examined)s,
    %(rows_changed)s, %(runs_changed)s, %(old_cost_usd)s, %(new_cost_usd)s, %(old_cost_in_rands)s,
    %(new_cost_in_rands)s)
"""
