"""chatcore.money.prices against genai-prices, which it pins and must reproduce exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from chatcore.money.prices import (
    PRICES_PATH,
    PriceBook,
    TieredPrice,
    TokenUsage,
    UnknownModelPrice,
    default_price_book,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, for `local`
from local import pin_prices  # noqa: E402

BOOK = PriceBook.load()
TABLE = json.loads(PRICES_PATH.read_text())
ENTRIES = TABLE["models"]


def genai(model_id: str, usage: TokenUsage, at: datetime):
    """genai-prices' calculation with agno/Claude usage mapped to its convention."""
    return calc_price(
        Usage(
            input_tokens=usage.total_input,  # genai-prices: TOTAL input
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model_id,
        provider_id="anthropic",
        genai_request_timestamp=at,
    )


def _thresholds(entry: dict) -> list[int]:
    starts = set()
    for field in ("input", "output", "cache_read", "cache_write"):
        if isinstance(entry[field], dict):
            starts.update(tier["start"] for tier in entry[field]["tiers"])
    return sorted(starts)


def _split(total: int, output: int) -> list[TokenUsage]:
    """Ways to reach ``total`` input tokens: all uncached, and mixed with cache read + write."""
    read, write = total // 2, total // 5
    return [
        TokenUsage(input_tokens=total, output_tokens=output),
        TokenUsage(input_tokens=total - read - write, output_tokens=output, cache_read_tokens=read,
                   cache_write_tokens=write),
        TokenUsage(cache_read_tokens=total, output_tokens=output),
    ]


def usages_for(entry: dict) -> list[TokenUsage]:
    usages = [
        TokenUsage(),
        TokenUsage(input_tokens=1, output_tokens=1),
        TokenUsage(input_tokens=1234, output_tokens=567),
        TokenUsage(output_tokens=4096),
        TokenUsage(input_tokens=1200, output_tokens=800, cache_read_tokens=30000, cache_write_tokens=5000),
        TokenUsage(input_tokens=7, cache_read_tokens=150_000, cache_write_tokens=3),
        TokenUsage(input_tokens=950_000, output_tokens=64_000, cache_read_tokens=33_333, cache_write_tokens=11_111),
    ]
    for start in _thresholds(entry):
        for total in (start - 1, start, start + 1, start * 2 + 17):
            usages.extend(_split(total, 1500))
    return usages


def at_for(entry: dict) -> list[datetime]:
    start = date.fromisoformat(entry["effective_from"])
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    later = [date.fromisoformat(e["effective_from"]) for e in ENTRIES
             if e["model"] == entry["model"] and date.fromisoformat(e["effective_from"]) > start]
    points = [first, first + timedelta(hours=12)]
    if later:
        end = min(later)
        points.append(datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(seconds=1))
    else:
        points.append(datetime(2027, 6, 1, tzinfo=UTC))
    return points


ENTRY_IDS = [f"{e['model']}@{e['effective_from']}" for e in ENTRIES]


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_cost_equals_genai_prices_for_every_pinned_price(entry: dict) -> None:
    model_id = entry["model"]
    for at in at_for(entry):
        price = BOOK.find(model_id, at)
        assert price.price_key == f"anthropic/{model_id}@{entry['effective_from']}"
        assert price.version == TABLE["version"]
        for usage in usages_for(entry):
            ours = BOOK.cost_usd(model_id, usage, at)
            theirs = genai(model_id, usage, at)
            assert theirs.model.id == model_id
            assert ours.price == price
            assert ours.usd == theirs.total_price, (model_id, at, usage)
            # to the last digit, exponent included
            assert str(ours.usd) == str(theirs.total_price), (model_id, at, usage)


def test_every_genai_prices_anthropic_model_is_pinned() -> None:
    from genai_prices.data import providers

    anthropic = next(p for p in providers if p.id == "anthropic")
    assert set(BOOK.models) == {m.id for m in anthropic.models}


def test_hand_check_sonnet_4_5() -> None:
    usage = TokenUsage(input_tokens=1200, cache_read_tokens=30000, cache_write_tokens=5000, output_tokens=800)
    priced = default_price_book().cost_usd("claude-sonnet-4-5", usage, datetime(2025, 11, 1, tzinfo=UTC))
    assert priced.usd == Decimal("0.04335")
    assert priced.price.model == "claude-sonnet-4-5"
    # 1200 * 3 + 30000 * 0.3 + 5000 * 3.75 + 800 * 15, per million
    assert priced.usd == (1200 * Decimal(3) + 30000 * Decimal("0.3") + 5000 * Decimal("3.75") + 800 * 15) / 10**6


def test_long_context_tier_prices_the_whole_request() -> None:
    at = datetime(2025, 11, 1, tzinfo=UTC)
    price = BOOK.find("claude-sonnet-4-5-20250929", at)
    assert isinstance(price.input, TieredPrice) and price.input.tiers[0].start == 200_000
    at_threshold = TokenUsage(input_tokens=100_000, cache_read_tokens=100_000, output_tokens=1000)
    above = TokenUsage(input_tokens=100_001, cache_read_tokens=100_000, output_tokens=1000)
    # exactly 200k total input: base rates; one more token: every token (output too) at tier rates
    assert BOOK.cost_usd("claude-sonnet-4-5", at_threshold, at).usd == Decimal("0.345")
    assert BOOK.cost_usd("claude-sonnet-4-5", above, at).usd == Decimal("0.682506")


def test_models_without_cache_prices_bill_cache_tokens_as_input() -> None:
    usage = TokenUsage(input_tokens=100, cache_read_tokens=1000, cache_write_tokens=10)
    assert BOOK.cost_usd("claude-2.1", usage, datetime(2024, 1, 1)).usd == Decimal(1110 * 8) / 10**6


def test_unknown_model_raises() -> None:
    for model_id in ("gpt-4o", "claude-sonnet-9", "claude", "", "anthropic.claude-sonnet-4-5"):
        with pytest.raises(UnknownModelPrice, match="no pinned Anthropic price") as info:
            BOOK.find(model_id, datetime(2025, 1, 1, tzinfo=UTC))
        assert isinstance(info.value, LookupError)
        with pytest.raises(LookupError):
            genai(model_id, TokenUsage(), datetime(2025, 1, 1, tzinfo=UTC))


def _candidate_ids() -> list[str]:
    ids = {
        "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-3-5-haiku-latest", "claude-opus-4-1",
        "claude-opus-4-1-20250805", "claude-3-5-haiku-20241022", "claude-3-7-sonnet-20250219",
        "claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-opus-4", "claude-sonnet-4",
        "claude-haiku-4-5-20251001", "claude-sonnet-4-5@20250929", "claude-opus-5-20260301",
        "claude-opus-5@20260301", "claude-opus-5-2026-03-01", "claude-opus-5-latest", "claude-opus-5-2026-02-30",
        "claude-fable-5-20260101", "claude-fable-5-1-20260101", "claude-fable-5-2-2026-01-01",
        "claude-sonnet-5-20260101", "claude-sonnet-5-2026-01-01", "claude-haiku-5-5-20260101",
        "claude-haiku-5-5-2026-01-01", "claude-mythos-5-2-20260101", "claude-opus-5-5-20260101",
        "claude-sonnet-5-5-20260101", "claude-3-opus-20240229", "claude-3-haiku-20240307",
        "claude-3-sonnet-20240229", "claude-2.1", "claude-2.0", "claude-v1", "anthropic.claude-v2",
        "anthropic.claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-instant-1",
        "claude-sonnet-4-7", "claude-opus-4-9", "claude-sonnet", "claude-fable-5-x", "gpt-4o", "CLAUDE-SONNET-4-5",
        "Claude-Opus-4-6-20260101", "claude-sonnet-4-6:thinking",
    }
    for entry in ENTRIES:
        ids.add(entry["model"])
        ids.add(entry["model"] + "-20260115")
        ids.add(entry["model"] + "-2026-01-15")
        for rule in entry["aliases"]:
            (kind, value), = rule.items()
            if kind == "regex":
                continue
            for suffix in ("", "-20250929", "@20250929", "-latest", "-2025-09-29", "-v1:0", "x"):
                ids.add(value + suffix)
            ids.add(value.upper())
    return sorted(ids)


@pytest.mark.parametrize("model_id", _candidate_ids())
def test_matching_agrees_with_genai_prices(model_id: str) -> None:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    try:
        expected = genai(model_id, TokenUsage(), at).model.id
    except LookupError:
        expected = None
    try:
        got = BOOK.find(model_id, at).model
    except UnknownModelPrice:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    "at",
    [
        datetime(2022, 6, 1, tzinfo=UTC),  # before every pinned period
        datetime(2026, 3, 12, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 13, tzinfo=UTC),
        datetime(2026, 3, 13, 3, 0, tzinfo=timezone(timedelta(hours=5))),  # still 2026-03-12 in UTC
        datetime(2026, 3, 12, 20, 0, tzinfo=timezone(timedelta(hours=-5))),  # already 2026-03-13 in UTC
        datetime(2026, 3, 12, 23, 0),  # naive = UTC
        datetime(2026, 3, 13, 0, 0),
    ],
)
def test_price_period_selection_matches_genai_prices(at: datetime) -> None:
    usage = TokenUsage(input_tokens=150_000, cache_read_tokens=60_000, cache_write_tokens=1000, output_tokens=2000)
    for model_id in ("claude-opus-4-6", "claude-sonnet-4-6-20260101"):
        theirs = genai(model_id, usage, at)
        ours = BOOK.cost_usd(model_id, usage, at)
        assert ours.usd == theirs.total_price
        assert str(ours.usd) == str(theirs.total_price)


def test_prices_json_is_up_to_date_with_genai_prices() -> None:
    table = pin_prices.build_table()
    assert table["source"] == "genai-prices"
    assert table["source_version"] == "0.2.3"
    assert table == TABLE
    assert pin_prices.render(table) == PRICES_PATH.read_text()
    assert table["version"] == pin_prices.price_version(TABLE["models"])


def test_token_usage() -> None:
    a = TokenUsage(input_tokens=1, output_tokens=2, cache_read_tokens=3, cache_write_tokens=4)
    b = TokenUsage(input_tokens=10, output_tokens=20, cache_read_tokens=30, cache_write_tokens=40)
    assert a + b == TokenUsage(11, 22, 33, 44)
    assert sum([a, b]) == a + b
    assert (a + b).total_input == 11 + 33 + 44
    with pytest.raises(ValueError):
        TokenUsage(input_tokens=-1)
    with pytest.raises(ValueError):
        TokenUsage(output_tokens=1.5)  # type: ignore[arg-type]


def test_default_price_book_is_cached_and_versioned() -> None:
    book = default_price_book()
    assert book is default_price_book()
    assert book.version == TABLE["version"] and len(book.version) == 12
    assert book.source_version == "0.2.3"


def test_pricing_module_does_not_import_genai_prices() -> None:
    code = (
        "import sys, datetime\n"
        "from chatcore.money.prices import default_price_book, TokenUsage\n"
        "default_price_book().cost_usd('claude-sonnet-4-5', TokenUsage(1, 1), datetime.datetime.now())\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('genai_prices', 'agno', 'pydantic'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _synthetic_book(*models: tuple[str, int, list[dict[str, str]]]) -> PriceBook:
    entries = [
        {"provider": "anthropic", "model": model, "match_order": order, "aliases": aliases,
         "effective_from": "2023-01-01", "input": "1", "output": "2", "cache_read": None, "cache_write": None}
        for model, order, aliases in models
    ]
    return PriceBook({"source": "test", "source_version": "0", "version": "v", "models": entries})


def test_first_match_in_genai_prices_order_wins() -> None:
    # genai-prices returns the first model in ITS list order whose rules match, not the
    # alphabetically first or the most specific one. (No two pinned Anthropic models overlap today.)
    book = _synthetic_book(
        ("claude-a-specific", 1, [{"equals": "claude-z-1"}]),
        ("claude-z-broad", 0, [{"starts_with": "claude-z"}]),
    )
    at = datetime(2025, 1, 1)
    assert book.find("claude-z-1", at).model == "claude-z-broad"
    assert book.find("CLAUDE-Z-9", at).model == "claude-z-broad"


def test_compact_date_fallback_like_genai_prices() -> None:
    book = _synthetic_book(("claude-z", 0, [{"equals": "claude-z-2025-09-29"}, {"regex": "^claude-q$"}]))
    at = datetime(2025, 1, 1)
    assert book.find("claude-z-20250929", at).model == "claude-z"
    with pytest.raises(UnknownModelPrice):
        book.find("claude-z-20250230", at)  # not a real date: left as is
