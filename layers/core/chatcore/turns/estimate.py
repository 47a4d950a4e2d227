"""The price before you send (``POST /sessions/{id}/turns/estimate``): what a turn with this body would
cost, without calling any model or storing anything.

It reads what the turn's first statement reads (``store.turns.read_estimate``: no lock, no
``FOR UPDATE``) and what the session's last model call used. The next request is that call's
prompt, plus its answer, plus the new message (its text as the context builder counts it, each photo
as the API counts an image of its normalised size, each PDF page as ``PAGE_TOKENS``); with the prompt
cache still warm (the last call within PROMPT_CACHE_TTL) the last prompt is a cache read and the rest
a cache write, else the whole prompt is written. The answer's tokens are the average of the session's
last completed turns. A session's first turn goes by the first call of the newest session of the same
agent or team (its prompt less its message and its recall: the instructions and tools as the API
counted them, a cache read when that agent or team answered within the cache's TTL; plus the user's
own recall; its answer's tokens); with none yet, by the context builder's estimate of the instructions and tools and
``DEFAULT_OUTPUT_TOKENS``.

- ``low``: one model call, the cache read, half the shortest recent answer;
- ``likely``: the first model call, the cache read when the cache is warm, the average answer
  (``likely_without_cache``: the same, everything written to the cache), plus the calls past the first
  that the agent's or team's recent turns made (``RecentCalls``: tool loops, the session's own last
  turns' once it has one; members' calls, web searches; a message asking to remember or forget,
  memory on, at least one tool loop);
- ``high``: the turn's budget reservation (``turns.begin.turn_reservation``: every model call the
  turn may make, its whole input uncached and ``max_tokens`` of output).

A photo upload is sized from its header (``media.uploads.read_upload_size``: one ranged GET); a PDF
upload is read whole (its page count needs the file).

With it: the budget left, and the refusal the turn would get now (403 not in the plan, 429 a rate
limit with its Retry-After, 402 the budget), read with the turn's own checks. The estimate counts
against no limit of the plan (it is not a turn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from agno.models.message import Message

from chatcore import db
from chatcore.catalog import participants
from chatcore.catalog.specs import web_searches_per_call
from chatcore.config import get_settings
from chatcore.media.photos import header_size
from chatcore.memory.facts import render
from chatcore.errors import BudgetExceeded, InvalidInput, NotFound, NotInPlan, ServiceMisconfigured
from chatcore.money.budgets import month_bounds, refuse_if_over
from chatcore.money.plans import limit_refusal
from chatcore.money.prices import TokenUsage, default_price_book
from chatcore.store import turns as turn_rows
from chatcore.store.history import history_params
from chatcore.turns.agent import MEMORY_OVERHEAD_TOKENS
from chatcore.turns.begin import check_plan_allows, turn_reservation
from chatcore.turns.context import IMAGE_TOKENS, PAGE_TOKENS, message_tokens
from chatcore.turns.memory import ASKS_TO_REMEMBER, recall_messages
from chatcore.turns.registry import conversation_for
from chatcore.turns.turn import TurnInput
from chatcore.wire.amounts import decimal_string

# The answer of a session's first turn, in tokens (no turn of its own to average yet).
DEFAULT_OUTPUT_TOKENS = 250
# A tool loop of an agent none of whose recent turns made one: what the tool call and its result add
# to the prompt, and the tool call's output tokens. A guess on the generous side for a short call (the
# stand-in's remember call measures 25 tokens added and 6 of output; the API's tool_use block, with
# its id and JSON input, is longer); the agent's own recent loops replace it once it has any.
TOOL_LOOP_GROWTH_TOKENS, TOOL_CALL_OUTPUT_TOKENS = 100, 60
# A prompt prefix shorter than this is not cached (Anthropic's minimum; 2,048 for Haiku models), not
# counting the request's own few tokens.
MIN_CACHEABLE_TOKENS, REQUEST_OVERHEAD_TOKENS = 1_024, 4
CACHE_TTL_SECONDS = {"5m": 300, "1h": 3600}
# The API's own image sizing (Anthropic's vision docs): a long edge of at most 1,568 px and about
# 1.15 megapixels, then (width * height) / 750 tokens.
IMAGE_MAX_EDGE, IMAGE_MAX_PIXELS, IMAGE_PIXELS_PER_TOKEN = 1568, 1_150_000, 750


def image_tokens(content: bytes) -> int:
    """The tokens the API bills for an image: its size from its header alone (nothing decoded),
    scaled as the API scales it; IMAGE_TOKENS when its size cannot be read."""
    return size_tokens(header_size(content))


def size_tokens(size: tuple[int, int] | None) -> int:
    """The tokens the API bills for an image of ``size`` (width, height), scaled as the API scales it;
    IMAGE_TOKENS (the context builder's guess) for an image whose size is not known."""
    if size is None:
        return IMAGE_TOKENS
    width, height = size
    scale = min(1.0, IMAGE_MAX_EDGE / max(width, height), math.sqrt(IMAGE_MAX_PIXELS / (width * height)))
    return math.ceil(max(1, math.floor(width * scale)) * max(1, math.floor(height * scale)) / IMAGE_PIXELS_PER_TOKEN)


def new_tokens(turn: TurnInput, upload_sizes: list[tuple[int, int] | None] = ()) -> int:
    """The tokens the turn's message adds to the prompt: its text, photos (and the photo uploads of
    ``upload_sizes``, sized from their headers) and PDF pages."""
    text = message_tokens(Message(role="user", content=turn.message)) if turn.message else 0
    return (text + sum(image_tokens(image.content) for image in turn.images) + sum(map(size_tokens, upload_sizes))
            + PAGE_TOKENS * sum(document.pages for document in turn.documents))


def recall_tokens(snapshot: str | None) -> int:
    """The tokens a session's recall of the user's memories adds to its prompt (none: no recall)."""
    return sum(message_tokens(m) for m in recall_messages(snapshot))


def _own_recall_tokens(row: dict[str, Any], settings) -> int:
    """The tokens of the session's recall as its next turn renders it (``turns.begin._recall``): its
    snapshot, or the user's memories now when the snapshot is missing or older than them."""
    snapshot = row["memory_snapshot"]
    if snapshot is None or row["snapshot_version"] != row["memory_version"]:
        snapshot = render(row["memories_to_recall"] or [], settings.memory_max_tokens)
    return recall_tokens(snapshot)


def _money(usd: Decimal, fx_rate: Decimal) -> dict[str, str]:
    return {"usd": decimal_string(usd.quantize(Decimal("1e-10"))),
            "zar": decimal_string((usd * fx_rate).quantize(Decimal("1e-10")))}


def estimate_turn(turn: TurnInput, upload_sizes: list[tuple[int, int] | None] = ()) -> dict[str, Any]:
    """The estimate of ``turn`` (see the module) with the photo uploads of ``upload_sizes`` (their
    headers' sizes: ``media.uploads.read_upload_size``) besides its own photos: 404 for a session that
    is not the caller's, 422 for an empty message; reads the database, stores nothing, calls no model."""
    settings = get_settings()
    if not turn.message.strip() and not turn.images and not turn.documents and not upload_sizes:
        raise InvalidInput("a turn needs a message or an image (or a PDF document)", field="message")
    month_start, month_end = month_bounds()
    ttl = CACHE_TTL_SECONDS[settings.prompt_cache_ttl]
    with db.connection() as conn:
        row = turn_rows.read_estimate(
            conn, sub=turn.sub, session_id=turn.session_id, stale_seconds=settings.stale_turn_seconds,
            month_start=month_start, month_end=month_end, cache_ttl=ttl, **history_params(settings))
    if row is None:
        raise NotFound("no such session")
    if row["fx_rate"] is None:
        raise ServiceMisconfigured("no USD/ZAR exchange rate is configured; add one to fx_rates")
    conversation = conversation_for(row["agent_name"], row["team_name"])
    spec = conversation.spec
    overhead = conversation.overhead_tokens
    if row["memory_enabled"] and conversation.remembers:
        overhead += MEMORY_OVERHEAD_TOKENS
    added = new_tokens(turn, upload_sizes)
    last_prompt = row["last_prompt_tokens"]
    outputs = [n for n in row["recent_outputs"] or [] if n]
    first = row["first_call"]
    # a session's first turn renders the user's recall at the start of its messages (memory on)
    recall = _own_recall_tokens(row, settings) if row["memory_enabled"] and conversation.remembers else 0
    shared = 0  # the instructions and tools: the same in every session of the agent or team
    if last_prompt is not None:
        prefix = last_prompt + row["last_output_tokens"]
    elif first is not None:  # the instructions and tools as the API counted them in another session's first call
        shared = max(0, first["prompt_tokens"] - recall_tokens(first["snapshot"])
                     - message_tokens(Message(role="user", content="x" * first["message_chars"])))
        prefix = shared + recall
        outputs = [first["output_tokens"]] if first["output_tokens"] else []
    else:
        prefix = overhead + recall
    prompt = min(settings.context_max_tokens, prefix + added)
    output = round(sum(outputs) / len(outputs)) if outputs else DEFAULT_OUTPUT_TOKENS
    fewest = min(outputs) // 2 if outputs else 1  # a short answer: half the shortest recent one
    # the user's memories changed since the session's recall was rendered: the turn renders it again, and
    # the prompt (the recall is at its start) no longer matches the cached one
    recall_changes = bool(row["memory_enabled"] and conversation.remembers
                          and row["snapshot_version"] != row["memory_version"])
    # what the last call left in the cache: its prefix up to its last breakpoint (none when too short)
    cached = 0 if recall_changes else (row["last_cached_tokens"] or 0)
    if last_prompt is None and first is not None and row["agent_warm"] and shared - REQUEST_OVERHEAD_TOKENS >= MIN_CACHEABLE_TOKENS:
        cached = shared  # the instructions and tools (their breakpoint), cached by the agent's other sessions
    warm = bool(row["cache_warm"] if last_prompt is not None else row["agent_warm"]) and cached > 0
    one_hour = settings.prompt_cache_ttl == "1h"

    def usage(read: int, out: int) -> TokenUsage:
        read = min(read, prompt)
        write = prompt - read if prompt - REQUEST_OVERHEAD_TOKENS >= MIN_CACHEABLE_TOKENS else 0
        return TokenUsage(input_tokens=prompt - read - write, cache_read_tokens=read, cache_write_tokens=write,
                          cache_write_1h_tokens=write if one_hour else 0, output_tokens=out)

    now = datetime.now(timezone.utc)
    prices = default_price_book()

    def usd(tokens: TokenUsage) -> Decimal:
        return prices.cost_usd(spec.model_id, tokens, now).usd

    readable = cached
    low = usd(usage(readable, fewest))
    if last_prompt is None and first is None:  # nothing to go by but the context builder's generous guess
        low = prices.cost_usd(spec.model_id, TokenUsage(input_tokens=added, output_tokens=1), now).usd
    calls = recent_calls(row, turn, conversation)
    more = _more_calls_usd(calls, prompt, spec, participants(spec), prices, now, one_hour)
    likely = usd(usage(cached if warm else 0, output)) + more
    without_cache = usd(usage(0, output)) + more
    fx_rate = row["fx_rate"]
    # the reservation counts each photo as the turn does (IMAGE_TOKENS), uploads too
    reservation, _ = turn_reservation(replace(turn, images=[*turn.images, *([None] * len(upload_sizes))]),
                                      row, conversation, overhead, settings)
    high = reservation / fx_rate
    high = max(high, likely, without_cache)
    return {
        "session_id": str(turn.session_id),
        "model_id": spec.model_id,
        "cost": {"low": _money(min(low, likely), fx_rate), "likely": _money(likely, fx_rate),
                 "likely_without_cache": _money(without_cache, fx_rate), "high": _money(high, fx_rate)},
        "tokens": {"prompt": prompt, "new": added, "cache_read": cached if warm else 0, "output": output},
        "cache_warm": warm,
        "model_calls": {"likely": round(1 + calls.loops + calls.member_calls),
                        "high": settings.max_model_calls_per_turn},
        "budget": _budget(row),
        "refusal": _refusal(row, conversation, reservation, month_start),
    }


@dataclass(frozen=True)
class RecentCalls:
    """The model calls a turn of this agent or team makes past its first, as its recent turns made
    them (anyone's; ``store.turns.ESTIMATE_CALLS``): per turn, its tool loops (each a call that
    re-sends the prompt, ``loop_growth`` tokens longer, and answers with ``loop_output`` tokens: the
    tool call), its members' calls (a team's; ``member`` the tokens of one) and its web searches."""

    loops: float = 0.0
    loop_growth: int = TOOL_LOOP_GROWTH_TOKENS
    loop_output: int = TOOL_CALL_OUTPUT_TOKENS
    member_calls: float = 0.0
    member: TokenUsage = TokenUsage()
    searches: float = 0.0


def recent_calls(row: dict[str, Any], turn: TurnInput, conversation) -> RecentCalls:
    """The calls past the first that this turn likely makes. Its tool loops: once the session has a
    turn, the average of its own last turns' (a turn that asked to remember or forget, memory on, less
    the memory tool's loop that explains it), else the agent's (or team's) recent turns', anyone's; a
    message asking to remember or forget makes one loop more (at least one). Its members' calls and
    searches: the agent's or team's recent turns' averages."""
    memory_on = bool(row["memory_enabled"] and conversation.remembers)

    def asks(message: str | None) -> int:
        return int(bool(memory_on and message and ASKS_TO_REMEMBER.search(message)))

    own = list(zip(row["own_loops"] or [], row["own_messages"] or []))
    if own:  # this user's own way with the agent: other users' tool-heavy turns say little about it
        loops = sum(max(0, n - asks(m)) for n, m in own) / len(own) + asks(turn.message)
    else:
        loops = max(float(row["loops"] or 0), float(asks(turn.message)))
    members = float(row["member_calls"] or 0)

    def whole(name: str, default: int = 0) -> int:
        return default if row[name] is None else round(row[name])

    return RecentCalls(
        loops=loops, loop_growth=whole("loop_growth", TOOL_LOOP_GROWTH_TOKENS),
        loop_output=whole("loop_output", TOOL_CALL_OUTPUT_TOKENS), member_calls=members,
        member=TokenUsage(input_tokens=whole("member_input"), cache_read_tokens=whole("member_read"),
                          cache_write_tokens=whole("member_write"), output_tokens=whole("member_output")),
        searches=float(row["searches"] or 0))


def _more_calls_usd(calls: RecentCalls, prompt: int, spec, specs, prices, now: datetime, one_hour: bool) -> Decimal:
    """What the calls past the first cost: each tool loop re-sends the prompt (read from the cache the
    call before wrote, when it is long enough to be cached) with what the loop added written; each
    member call as the members' recent calls used, at the members' models (their average); each search."""
    cacheable = prompt - REQUEST_OVERHEAD_TOKENS >= MIN_CACHEABLE_TOKENS
    loop = TokenUsage(input_tokens=0 if cacheable else prompt + calls.loop_growth,
                      cache_read_tokens=prompt if cacheable else 0,
                      cache_write_tokens=calls.loop_growth if cacheable else 0,
                      cache_write_1h_tokens=calls.loop_growth if cacheable and one_hour else 0,
                      output_tokens=calls.loop_output)
    total = prices.cost_usd(spec.model_id, loop, now).usd * Decimal(str(calls.loops))
    members = specs[1:]
    if members and calls.member_calls:
        one = sum((prices.cost_usd(m.model_id, calls.member, now).usd for m in members), Decimal(0)) / len(members)
        total += one * Decimal(str(calls.member_calls))
    if calls.searches:
        searcher = next((s for s in specs if web_searches_per_call(s)), spec)
        total += prices.cost_usd(searcher.model_id, TokenUsage(web_searches=1), now).usd * Decimal(str(calls.searches))
    return total


def _budget(row: dict[str, Any]) -> dict[str, str] | None:
    """The user's budget of the month (their own, else their plan's) and what is left of it."""
    budget = row["monthly_budget_zar"]
    if budget is None:
        return None
    spent, reserved = row["month_spent"] or Decimal(0), row["month_reserved"] or Decimal(0)
    return {"monthly_budget_zar": decimal_string(budget), "spent_zar": decimal_string(spent),
            "reserved_zar": decimal_string(reserved), "left_zar": decimal_string(max(Decimal(0), budget - spent - reserved))}


def _refusal(row: dict[str, Any], conversation, reservation: Decimal, month_start: datetime) -> dict[str, Any] | None:
    """The problem the turn would be refused with now (as the turn checks: the plan, its rate limits,
    the budget), or None."""
    try:
        check_plan_allows(row, conversation)
    except NotInPlan as e:
        return e.to_problem()
    refused = limit_refusal(row)
    if refused is not None:
        return refused.to_problem()
    try:
        refuse_if_over(row["monthly_budget_zar"], row["month_spent"], month_start, reserved=row["month_reserved"],
                       reservation=reservation)
    except BudgetExceeded as e:
        return e.to_problem()
    return None
