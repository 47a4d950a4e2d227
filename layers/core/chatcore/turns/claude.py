"""The Claude models agents run on: built once per process so their HTTP clients are reused.

Every request asks for prompt caching: the system prompt (with the tools before it, which the
cache prefix covers) carries a breakpoint, the Messages API's top-level ``cache_control``
(automatic caching) puts one on the last block of the conversation, so the next model call of the
turn, and the next turn, read the whole history from the cache while it is unchanged; and the last
block of the history before the turn's own message carries one too (``with_history_breakpoint``),
so a request whose history changed only at its end (the previous turn's photos replaced by a
placeholder when a new album pushes them out, ``turns.context``) still reads everything before that
from the cache: the 20-block lookback of the top-level breakpoint alone does not reach back past a
new message of 20 photos. Three breakpoints of the API's four, all with ``PROMPT_CACHE_TTL`` (``5m``,
or ``1h`` billed at its own rate: ``tracking.usage_of``).

A model call silent for ``MODEL_IDLE_TIMEOUT`` seconds (120) is ended and retried at most
``MODEL_MAX_RETRIES`` times (2): a model that never answers ends the turn, as failed with a terminal
event, within about (1 + 2) x 120 s = 6 minutes, well inside the function's 900 s.
"""

from __future__ import annotations

import asyncio
import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

from agno.exceptions import ModelProviderError
from agno.models.anthropic import Claude
from agno.models.message import Message
from agno.utils.models.claude import _format_file_for_message, _format_image_for_message, supports_thinking_budget
from anthropic import Timeout  # the SDK's own (it runs on httpx2: an httpx.Timeout is refused)

from chatcore.config import anthropic_api_key, get_settings
from chatcore.money.prices import TokenUsage

# The most output tokens one model call may produce (what a budget reservation counts per call).
MAX_OUTPUT_TOKENS = 4096
CUT_SHORT = "the model's answer was cut short: its stream ended without message_stop"


@dataclass(eq=False)
class _StreamSeen:
    """One model call's stream as it arrives: whether it ended (``message_stop``), what it reported."""

    log: CallLog | None = None
    run_id: str | None = None
    messages: Any = None
    stopped: bool = False
    usage: Any = None
    chars: int = 0
    searches: int = 0  # web searches the API ran in this call (a web_search_tool_result each): billed
    recorded: bool = False

    def record_cut(self) -> None:
        """What an aborted stream is billed, estimated, once: ``message_start``'s usage when it came
        (else the request's estimated input, ``turns.context``), a token per 4 characters received, and
        each web search whose results came (the API ran it: it is billed, whatever follows)."""
        if self.recorded or self.log is None or self.run_id is None:
            return
        self.recorded = True
        self.log.open.discard(self)
        u = self.usage
        get = (lambda name: int(getattr(u, name, 0) or 0)) if u is not None else (lambda name: 0)
        input_tokens = get("input_tokens")
        if u is None and self.messages:
            from chatcore.turns.context import message_tokens

            input_tokens = sum(message_tokens(m) for m in self.messages)
        self.log.cut.append((self.run_id, TokenUsage(
            input_tokens=input_tokens, output_tokens=max(get("output_tokens"), math.ceil(self.chars / 4)),
            cache_read_tokens=get("cache_read_input_tokens"), cache_write_tokens=get("cache_creation_input_tokens"),
            web_searches=self.searches)))


@dataclass
class CallLog:
    """A turn's model calls whose stream was cut short or aborted (a stop, TURN_TIMEOUT): ``cut``,
    (run id, our estimate of what was billed). A stream the turn stopped reading is recorded when
    it is closed, or by ``close_open`` when the turn ends first (agno may close it later)."""

    cut: list[tuple[str, TokenUsage]] = field(default_factory=list)
    open: set[_StreamSeen] = field(default_factory=set)
    # the encrypted data of each redacted thinking block the turn's model calls streamed: agno passes it
    # on as thinking text, which the app must never get (turns.thinking)
    redacted: set[str] = field(default_factory=set)
    # the user's approximate location for web searches (the turn's ``location``: the API's user_location)
    search_location: dict[str, str] | None = None

    def close_open(self) -> list[tuple[str, TokenUsage]]:
        for seen in list(self.open):
            seen.record_cut()
        return self.cut


# The turn sets a CallLog here before running (``turns.run``); ``ChatClaude`` records in it.
cut_calls: ContextVar[CallLog | None] = ContextVar("cut_calls", default=None)
_stream_seen: ContextVar[_StreamSeen | None] = ContextVar("stream_seen", default=None)


def without_blank_text(messages: list[Message], *, citations: bool = True) -> list[Message]:
    """The messages as the model must get them: a user message whose text is empty or only whitespace
    (a photo sent without a caption, now or earlier in the session) becomes its media blocks alone.
    agno formats every user message as a text block first, and the Messages API refuses an empty or
    blank one ("text content blocks must be non-empty"). The stored message is not changed: this is
    the request's copy."""
    return [_media_only(m, citations) if _blank_with_media(m) else m for m in messages]


def _blank_with_media(message: Message) -> bool:
    return (message.role == "user" and (message.content is None or isinstance(message.content, str))
            and not (message.content or "").strip() and bool(message.images or message.files))


def _media_only(message: Message, citations: bool) -> Message:
    blocks = [b for b in map(_format_image_for_message, message.images or []) if b]
    blocks += [b for f in message.files or [] if (b := _format_file_for_message(f, enable_citations=citations))]
    if not blocks:  # nothing could be formatted: agno's own message (and the API's answer) stand
        return message
    return message.model_copy(update={"content": blocks, "images": None, "files": None})


def located(tools: list[dict[str, Any]], location: dict[str, str]) -> list[dict[str, Any]]:
    """The request's tools with the user's approximate location on its web search tool (the request's
    copy: the agent's tools are shared by every turn of the process)."""
    from chatcore.catalog.specs import WEB_SEARCH_TOOL

    return [{**t, "user_location": {"type": "approximate", **location}}
            if isinstance(t, dict) and t.get("type") == WEB_SEARCH_TOOL else t for t in tools]


def with_history_breakpoint(messages: list[dict], cache_control: dict) -> list[dict]:
    """``messages`` (the request's, in the API's format) with ``cache_control`` on the last block of
    the message before the turn's own (the last user message that is not only tool results): the
    end of the history. Unchanged when there is no history, or that block cannot carry one (a
    thinking block). The messages and blocks changed are copies: agno's (and the stored) stay as
    they are."""
    turn_start = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"
                       and not _only_tool_results(messages[i].get("content"))), None)
    if not turn_start:  # None, or 0: no history before the turn
        return messages
    end = turn_start - 1
    content = messages[end].get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    if not blocks or not isinstance(blocks[-1], dict) or blocks[-1].get("type") in ("thinking", "redacted_thinking") \
            or (blocks[-1].get("type") == "text" and not (blocks[-1].get("text") or "").strip()):
        return messages
    blocks[-1] = {**blocks[-1], "cache_control": cache_control}
    return [*messages[:end], {**messages[end], "content": blocks}, *messages[end + 1:]]


def _only_tool_results(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


class _Marked:
    """The SDK's ``messages`` resource (or ``beta``), whose requests get ``with_history_breakpoint``."""

    def __init__(self, inner: Any, cache_control: dict) -> None:
        self._inner, self._cache_control = inner, cache_control

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in ("messages", "beta"):
            return _Marked(value, self._cache_control)
        if name in ("stream", "create"):
            def call(*args: Any, **kwargs: Any) -> Any:
                if isinstance(kwargs.get("messages"), list):
                    kwargs["messages"] = with_history_breakpoint(kwargs["messages"], self._cache_control)
                return value(*args, **kwargs)
            return call
        return value


class ChatClaude(Claude):
    """agno's Claude, except that:

    - a stream ending without ``message_stop`` (a cut connection) fails the model call instead of
      passing the partial answer off as complete. What the API billed before the cut
      (``message_start``'s usage, and at least a token per 4 characters received) goes to
      ``cut_calls``, so the failed turn still stores and prices it;
    - a photo without a caption is sent as its image blocks alone (``without_blank_text``);
    - the turn's ``location`` goes on the web search tool as its ``user_location`` (``located``);
    - the end of the history carries a cache breakpoint (``with_history_breakpoint``)."""

    def get_async_client(self) -> Any:
        client = super().get_async_client()  # agno's, built once and reused
        cache_control = (self.request_params or {}).get("cache_control")
        return _Marked(client, cache_control) if cache_control else client

    async def ainvoke_stream(self, *args: Any, **kwargs: Any):
        run_response = kwargs.get("run_response")
        seen = _StreamSeen(log=cut_calls.get(), run_id=str(run_response.run_id) if run_response else None,
                           messages=kwargs.get("messages"))
        if isinstance(kwargs.get("messages"), list):  # agno passes every argument by name
            kwargs = {**kwargs, "messages": without_blank_text(kwargs["messages"], citations=bool(self.citations))}
        if seen.log is not None and seen.log.search_location and kwargs.get("tools"):
            kwargs = {**kwargs, "tools": located(kwargs["tools"], seen.log.search_location)}
        if seen.log is not None:
            seen.log.open.add(seen)
        token = _stream_seen.set(seen)
        try:
            async for response in super().ainvoke_stream(*args, **kwargs):
                yield response
        except (GeneratorExit, asyncio.CancelledError):
            # the turn stopped reading (a stop button, TURN_TIMEOUT): the stream is aborted, and the
            # API bills what it had generated, so our estimate of it is recorded
            if not seen.stopped:
                seen.record_cut()
            raise
        finally:
            if seen.log is not None:  # ended or failed (an API error is not billed): no longer open
                seen.log.open.discard(seen)
            try:
                _stream_seen.reset(token)
            except ValueError:  # closed by the event loop's finaliser, in another context
                pass
        if not seen.stopped:
            seen.record_cut()
            raise ModelProviderError(CUT_SHORT, model_name=self.name, model_id=self.id)

    def _parse_provider_response_delta(self, response: Any, *args: Any, **kwargs: Any):
        seen = _stream_seen.get()
        if seen is not None:
            kind = getattr(response, "type", None)
            if kind == "message_stop":
                seen.stopped = True
            elif kind == "message_start":
                seen.usage = getattr(getattr(response, "message", None), "usage", None)
            elif kind == "content_block_start":
                block = getattr(response, "content_block", None)
                if getattr(block, "type", None) == "web_search_tool_result":
                    seen.searches += 1
                elif getattr(block, "type", None) == "redacted_thinking" and getattr(block, "data", None) \
                        and seen.log is not None:
                    seen.log.redacted.add(block.data)
            elif kind == "content_block_delta":
                delta = getattr(response, "delta", None)
                seen.chars += len(getattr(delta, "text", None) or getattr(delta, "partial_json", None)
                                  or getattr(delta, "thinking", None) or "")  # thinking is billed as output too
        return super()._parse_provider_response_delta(response, *args, **kwargs)


class ModelNotConfigured(RuntimeError):
    """Neither an API key nor a stand-in endpoint is configured."""


def thinking_config(model_id: str, budget: int | None) -> dict[str, Any] | None:
    """The request's ``thinking`` for a spec's ``thinking_budget``: None (off); a budget on a model that
    takes one; adaptive thinking, its summary shown, on one that does not (the Claude 5 family refuses a
    budget with a 400)."""
    if not budget:
        return None
    if supports_thinking_budget(model_id):
        return {"type": "enabled", "budget_tokens": budget}
    return {"type": "adaptive", "display": "summarized"}


def max_output_tokens(thinking_budget: int | None) -> int:
    """The most output tokens one model call may produce: the answer's, plus its thinking's."""
    return MAX_OUTPUT_TOKENS + (thinking_budget or 0)


def dearest_call_usd(spec: Any, input_tokens: int) -> Decimal:
    """The most one model call of an agent or team may cost, in USD: ``input_tokens`` uncached in,
    ``max_tokens`` out (its thinking included) and its web searches, at the dearest of the specs whose
    calls a turn may make (a team's leader and each member, each at its own model, thinking budget and
    searches: ``catalog.participants``). What a budget reservation counts per model call."""
    from chatcore.catalog import participants
    from chatcore.catalog.specs import web_searches_per_call
    from chatcore.money.prices import default_price_book

    now, book = datetime.now(timezone.utc), default_price_book()
    return max(book.cost_usd(s.model_id, TokenUsage(input_tokens=input_tokens, output_tokens=max_output_tokens(s.thinking_budget),
                                                    web_searches=web_searches_per_call(s)), now).usd
               for s in participants(spec))


@lru_cache(maxsize=None)
def claude(model_id: str, thinking_budget: int | None = None) -> Claude:
    """A shared Claude model for ``model_id`` (thinking per ``thinking_config``), honouring ANTHROPIC_BASE_URL."""
    settings = get_settings()
    api_key = anthropic_api_key()  # ANTHROPIC_API_KEY, else the Secrets Manager secret (AWS)
    if not api_key:
        if not settings.anthropic_base_url:
            raise ModelNotConfigured(
                "set ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_SECRET_ARN (real Claude) "
                "or ANTHROPIC_BASE_URL (an Anthropic-compatible server)"
            )
        api_key = "no-key-needed-for-local-endpoint"
    client_params: dict = {
        # read: the longest silence between two chunks of the answer; connect: a model API that does
        # not answer at all. Each attempt is ended then, and the SDK retries (429, 5xx, timeouts).
        "timeout": Timeout(connect=10.0, read=float(settings.model_idle_timeout), write=30.0, pool=10.0),
        "max_retries": settings.model_max_retries,
    }
    if settings.anthropic_base_url:
        client_params["base_url"] = settings.anthropic_base_url
    one_hour = settings.prompt_cache_ttl == "1h"
    return ChatClaude(id=model_id, api_key=api_key, client_params=client_params,
                  max_tokens=max_output_tokens(thinking_budget), thinking=thinking_config(model_id, thinking_budget),
                  cache_system_prompt=True, extended_cache_time=one_hour,
                  request_params={"cache_control": {"type": "ephemeral", **({"ttl": "1h"} if one_hour else {})}})
