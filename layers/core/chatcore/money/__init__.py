"""Money: the pinned prices (``prices``), the cost of a model call in USD and rands (``cost``),
exchange rates (``fx``, ``fx_csv``), budgets, the daily rollup, re-pricing backfills and the spend
report. Amounts are written as ``chatcore.wire.amounts`` says. No agno import; the SQL lives in
``chatcore.store``."""
