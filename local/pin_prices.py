"""Pin genai-prices' bundled Anthropic prices into ``layers/core/chatcore/money/prices.json``.

Run ``python -m local.pin_prices``. Reads only the data bundled in the installed
genai-prices wheel (no network; ``UpdatePrices`` is never started) and writes a sorted,
reviewable table that ``chatcore.money.prices`` reads at run time without importing genai-prices.

What is pinned, per Anthropic model and per price period (genai-prices ``ConditionalPrice``):

- ``model``: genai-prices' model id; ``name``: its display name.
- ``match_order``: the model's position in genai-prices' provider list. genai-prices picks the
  FIRST model (in that order) whose match rules accept the lower-cased id, so the order is part
  of the matching semantics even though the file is sorted by model id.
- ``aliases``: the model's match logic, its ``or`` flattened to a list of single rules
  ``{"starts_with"|"equals"|"regex"|"contains"|"ends_with": value}``; any rule may match.
- ``effective_from``: the period's ``StartDateConstraint`` date, or ``DEFAULT_EFFECTIVE_FROM``
  for an unconstrained price.
- ``input``/``output``/``cache_read``/``cache_write``: USD per million tokens as decimal strings,
  or ``null`` if genai-prices has no such price (then those tokens are billed as plain input,
  as genai-prices does). A long-context price is
  ``{"base": "3", "tiers": [{"start": 200000, "price": "6"}]}``: exactly genai-prices'
  ``TieredPrices``: the highest tier whose ``start`` is strictly below the request's TOTAL
  input tokens (uncached + cache read + cache write) prices ALL tokens of that kind.
- ``not_applied``: other prices genai-prices has for the model that ``TokenUsage`` cannot carry
  (1-hour cache writes, web searches), for review only.

Request-context price variants (Batch API, fast mode) are not pinned: ``calc_price`` without a
``price_context`` never applies them.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

SOURCE = "genai-prices"
PROVIDER = "anthropic"
DEFAULT_EFFECTIVE_FROM = "2023-01-01"
PER_TOKENS = 1_000_000

# pinned field -> genai-prices price key
PRICE_FIELDS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
}

REPO_ROOT = Path(__file__).resolve().parent.parent
PRICES_PATH = REPO_ROOT / "layers" / "core" / "chatcore" / "money" / "prices.json"


def _rules(clause: Any) -> list[dict[str, str]]:
    from genai_prices import types as t

    if isinstance(clause, t.ClauseOr):
        return [rule for sub in clause.or_ for rule in _rules(sub)]
    for cls, key in (
        (t.ClauseStartsWith, "starts_with"),
        (t.ClauseEquals, "equals"),
        (t.ClauseRegex, "regex"),
        (t.ClauseContains, "contains"),
        (t.ClauseEndsWith, "ends_with"),
    ):
        if isinstance(clause, cls):
            return [{key: getattr(clause, key)}]
    raise ValueError(f"cannot pin match clause {clause!r} (only or/starts_with/equals/regex/contains/ends_with)")


def _price(value: Any, where: str) -> Any:
    from genai_prices import types as t

    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, t.TieredPrices):
        starts = [tier.start for tier in value.tiers]
        if starts != sorted(starts):
            raise ValueError(f"{where}: tiers not sorted by start")
        return {
            "base": str(value.base),
            "tiers": [{"start": int(tier.start), "price": str(tier.price)} for tier in value.tiers],
        }
    raise ValueError(f"{where}: unsupported price value {value!r}")


def _periods(model: Any) -> list[tuple[str, Any]]:
    """(effective_from, ModelPrice) in genai-prices' list order, which must be ascending."""
    from genai_prices import types as t

    if isinstance(model.prices, t.ModelPrice):
        return [(DEFAULT_EFFECTIVE_FROM, model.prices)]
    periods: list[tuple[str, Any]] = []
    for index, conditional in enumerate(model.prices):
        constraint = conditional.constraint
        if constraint is None:
            # genai-prices treats an unconstrained entry as always active; only the first one can
            # be represented as "from the beginning".
            if index != 0:
                raise ValueError(f"{model.id}: unconstrained price after position 0")
            start = DEFAULT_EFFECTIVE_FROM
        elif isinstance(constraint, t.StartDateConstraint):
            start = constraint.start_date.isoformat()
        else:
            raise ValueError(f"{model.id}: unsupported price constraint {constraint!r}")
        periods.append((start, conditional.prices))
    starts = [start for start, _ in periods]
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        raise ValueError(f"{model.id}: price periods are not in strictly ascending date order: {starts}")
    return periods


def build_entries() -> list[dict[str, Any]]:
    from genai_prices.data import providers  # bundled snapshot, no network

    provider = next(p for p in providers if p.id == PROVIDER)
    if provider.fallback_model_providers:
        raise ValueError("anthropic now has fallback providers; the pinned matcher does not model them")
    entries: list[dict[str, Any]] = []
    for order, model in enumerate(provider.models):
        aliases = _rules(model.match)
        for effective_from, model_price in _periods(model):
            raw = {k: v for k, v in model_price.__dict__.items() if not k.startswith("_") and v is not None}
            entry: dict[str, Any] = {
                "provider": PROVIDER,
                "model": model.id,
                "name": model.name,
                "match_order": order,
                "aliases": aliases,
                "effective_from": effective_from,
            }
            for field, key in PRICE_FIELDS.items():
                entry[field] = _price(raw.pop(key, None), f"{model.id}.{key}")
            if entry["input"] is None or entry["output"] is None:
                raise ValueError(f"{model.id}: missing input or output price")
            entry["not_applied"] = {key: _price(value, f"{model.id}.{key}") for key, value in raw.items()}
            entries.append(entry)
    entries.sort(key=lambda e: (e["model"], e["effective_from"]))
    return entries


def price_version(entries: list[dict[str, Any]]) -> str:
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def build_table() -> dict[str, Any]:
    from importlib.metadata import version

    entries = build_entries()
    return {
        "source": SOURCE,
        "source_version": version("genai-prices"),
        "version": price_version(entries),
        "currency": "USD",
        "per_tokens": PER_TOKENS,
        "models": entries,
    }


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def main() -> None:
    table = build_table()
    PRICES_PATH.write_text(render(table))
    periods = len(table["models"])
    models = len({e["model"] for e in table["models"]})
    print(f"wrote {PRICES_PATH.relative_to(REPO_ROOT)}: {models} models, {periods} price periods, "
          f"version {table['version']} ({table['source']} {table['source_version']})")


if __name__ == "__main__":
    main()
