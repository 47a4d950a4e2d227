"""A local stand-in for the Anthropic Messages API (NOT the real Claude).

Standard library only (but pypdf, imported when a PDF document block arrives, to count its pages).
It speaks the real Anthropic wire protocol, streaming included, so the
real ``anthropic`` SDK and agno's ``agno.models.anthropic.Claude`` work against it unchanged:

    client = anthropic.Anthropic(api_key="anything", base_url=server.url)
    Claude(id="claude-sonnet-4-5", api_key="anything", client_params={"base_url": server.url})

(or set ``ANTHROPIC_BASE_URL``). Used by the tests, and by the demo when no ANTHROPIC_API_KEY
is set. Run it on its own with ``python -m local.anthropic_standin --port 8787
[--context-window N] [--max-images N]``.

A stand-in that is more forgiving than the real service proves nothing: this one refuses what
the real Messages API refuses (see "Limits") and bills prompt caching the way Anthropic does
(see "Usage" and "Prompt caching").

Endpoints
---------
``POST /v1/messages`` (query string ignored, so the SDK's ``?beta=true`` works; any x-api-key)
    ``"stream": true`` answers with server-sent events exactly as Anthropic sends them:
    ``message_start``, ``ping``, then per content block ``content_block_start`` /
    ``content_block_delta`` (``text_delta`` in chunks of about three words, or
    ``input_json_delta`` chunks for ``tool_use``) / ``content_block_stop``, then
    ``message_delta`` (stop_reason and usage) and ``message_stop``. Otherwise the whole message
    is returned as JSON. A request the real API would refuse gets the real API's error
    instead (see "Limits"); it consumes no script step and touches no cache.
``POST /v1/messages/count_tokens`` -> ``{"input_tokens": N}``: N is the prompt estimate below
    (the same number the usage of ``/v1/messages`` adds up to). The same limits apply, except
    the context window (counting a prompt too long to send is what the endpoint is for).
``POST /_standin/script``  body: a step or a list of steps, appended to a FIFO queue.
``POST /_standin/config``  body: any of ``{"context_window": 60000, "max_images": 100,
    "clock_offset_seconds": 301, "latency_ms": {"claude-haiku-5-5": 400}}`` -> ``{"ok": true, "config": {...}}``. ``context_window`` and
    ``max_images`` are an int (every model) or an object ``{"<model id>": int, "default": int}``;
    ``null`` restores the default. ``clock_offset_seconds`` sets how far the prompt-cache clock
    runs ahead of real time. ``latency_ms`` (an int >= 0, or per model as above) is how long an
    accepted request waits before its answer starts (a slow model, or a slower cheap one). Unknown
    keys or bad values -> 400 and nothing changes. Values
    persist until ``/_standin/reset``. ``GET /_standin/config`` returns the current config.
``POST /_standin/clock``   body ``{"advance_seconds": 360}``: move the prompt-cache clock
    forward (adds to ``clock_offset_seconds``) -> ``{"ok": true, "clock_offset_seconds": S}``.
``POST /_standin/release`` end the stall of a ``stall_after_first_delta`` step (see below).
``POST /_standin/reset``   clear the queue, the recorded requests and the prompt cache, and
    restore the config (the constructor's / command line's values, else the defaults) and clock.
``GET  /_standin/requests`` every ``/v1/messages`` request received, in order, refused ones
    included: ``{"body": <request json>, "headers": {...selected...}, "response": {"usage": {...},
    "content": [...], "stop_reason": ...} | {"status": 400, "error": {...}}}`` (a body over the
    size limit is not kept: ``"body": null, "size": <bytes>``).
``GET  /_standin/health``  -> ``{"ok": true, "server": "anthropic-standin"}``.

Python: ``StandinServer.configure(**config)``, ``.advance_clock(seconds)``, ``.config()``,
``.script(steps)``, ``.reset()``, ``.requests()``.

Script steps (each accepted ``/v1/messages`` request consumes the next step; without one it
falls back to the default behaviour below)
    ``{"text": "..."}``                                  a text reply (stop_reason end_turn)
    ``{"tool_use": {"name": "...", "input": {...}}}``    a tool call (stop_reason tool_use);
        an optional ``"id"`` inside, and an optional ``"text"`` beside it (sent first)
    ``{"error": {"status": 529, "type": "overloaded_error", "message": "..."}}``
        that HTTP status with Anthropic's error body ``{"type": "error", "error": {...}}``
        and a ``request-id`` header
    ``{"cut_after_chars": N, "text": "..."}``  streams the first N characters of the text, then ends
        the response cleanly with no ``message_delta`` and no ``message_stop`` (a cut connection).
        With ``"search": "<query>"`` (and a web search tool in the request) a search runs first: its
        server_tool_use and web_search_tool_result blocks stream whole, then the cut text; the search
        is billed (``usage.server_tool_use``), as the API bills a search that ran.
    ``{"stream_error_after_chars": N, "text": "..."}``  streams the first N characters of the
        text, then an SSE ``event: error`` (overloaded_error) and closes the stream. A
        non-streaming request gets an HTTP 529 overloaded_error instead.
    Any step may add ``"usage": {...}`` (overrides the computed fields) and ``"delay_ms"``
    (sleep before each streamed delta).
    ``{"text": "...", "stall_after_first_delta": true}``  streams the first text delta, then stalls
        until ``StandinServer.release()`` (or ``POST /_standin/release``), at most
        ``"stall_seconds"`` (default 30), then streams the rest: a model that pauses mid-answer.
        ``StandinServer.stalled()`` says whether a response is stalled right now.
    Every streamed response's record notes ``"first_text_at"``: ``time.monotonic()`` just before its
    first text delta was written (the model's first content byte; None without text), for a client
    on the same machine to measure how long that byte took to reach it.
    With thinking requested (``"thinking": {"type": "enabled", "budget_tokens": N}`` or
    ``{"type": "adaptive"}``), every reply opens with a signed thinking block: the step's
    ``"thinking"`` text, else "Let me think about the question: ..." (or "... the tool results:
    ..."); ``"redacted_thinking": true`` adds a redacted_thinking block after it. Streamed as the
    API does: ``content_block_start`` (``{"type": "thinking", "thinking": "", "signature": ""}``),
    ``thinking_delta`` chunks, one ``signature_delta``; a redacted block whole in its
    ``content_block_start``. The signature is an HMAC of the text (``thinking_signature``); the
    redacted data a nonce and its HMAC. Thinking is billed as output (below).

NOTE: the anthropic SDK retries 408/409/429/5xx (529 included) and connection errors, twice by
default (``max_retries=2``). Every attempt is a new request and consumes a new step, exactly
as a real retry would hit the real API again: script one error step per attempt, or build the
client with ``max_retries=0``.

Default behaviour (deterministic, from the request)
    * tools offered and the last message is plain user text (not a tool_result):
        - ``remember`` offered and the text says "remember (that) <fact>" -> calls it with
          ``{"text": <fact>}`` (trailing punctuation dropped);
        - ``forget_memory`` offered and the text says "forget (that) <fact>" -> calls it with the id
          of the recalled memory (below) sharing the most words with the fact, if any;
        - ``set_reminder`` offered and the text says "remind me to <what> at <H[:MM][am|pm]>" -> calls it
          with ``{"text": <what>, "time": "HH:MM"}`` (24-hour);
    * the last user text asks a question ("?", no arithmetic) and the request holds a recall of the
      user's memories (a text starting "[What you remember about this user", then lines ``[id]
      memory``) with a memory sharing a word of 4+ letters with the question -> ``From what I
      remember: <memory>.``
      (the memories sharing most words, at most three); before any delegation or calculator call;
    * tools offered and the last message is plain user text, otherwise:
        - ``delegate_task_to_member`` offered -> calls it with ``member_id`` = the first member
          id found in the system prompt (agno's ``<member id="...">`` listing, or a line like
          ``ID: xxx``; else ``"unknown"``) and ``task`` = the user text;
        - else ``calculator`` offered and the user text holds an arithmetic expression ->
          calls ``calculator`` with ``{"expression": ...}``;
        - else a text reply.
    * a summariser (its system prompt says "You summarise conversations"): the summary so far from
      the prompt, then each ``User:`` line of the new part cut to 120 characters;
    * a memory consolidation (its system prompt says "You consolidate the memories"): the prompt's
      ``- `` lines once each (the same words, case and punctuation aside: the newest wording), those
      opening with the same three words merged into one (``I have visited Paris, Rome``), then,
      while a line is longer than the prompt's "at most N characters each" or all of them longer
      than its "N characters in all", the longest merged line keeps its first and newest items
      and says how many more it had (``..., and 12 more, ...``; merged again, a line's items and
      its count are taken apart first); answered as ``- `` lines;
    * text reply: ``Stand-in model reply to: <first 60 chars of the last user text>. I can see
      N image(s) in this conversation (total bytes B).``; when the last message carries tool
      results: ``The tool returned: <first 200 chars of the results>``.

Limits (as the real API documents and enforces them; messages in the real API's words)
    * body over 32 MB (33,554,432 bytes) -> HTTP 413 ``request_too_large``
      "Request exceeds the maximum allowed number of bytes."
    Everything else is HTTP 400 ``invalid_request_error``:
    * ``messages`` missing or empty; a role other than user/assistant; ``max_tokens`` missing
      (``/v1/messages`` only);
    * a message whose content is ``""`` or ``[]`` (except a final assistant message):
      "messages.{i}: all messages must have non-empty content except for the optional final
      assistant message"; a text block (in messages or system, tool_result contents included)
      whose text is ``""``: "messages: text content blocks must be non-empty", or only
      whitespace: "messages: text content blocks must contain non-whitespace text";
    * tool pairing: the tool_use ids of an assistant message that is followed by another
      message must all be answered by tool_result blocks in that next (user) message:
      "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after:
      {ids}. Each `tool_use` block must have a corresponding `tool_result` block in the next
      message."; every tool_result must answer a tool_use of the message just before it:
      "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}.
      Each `tool_result` block must have a corresponding `tool_use` block in the previous
      message.";
    * ``cache_control``: type "ephemeral", ttl "5m" (default) or "1h"; not on a thinking or
      redacted_thinking block ("{path}.thinking.cache_control: Extra inputs are not permitted");
      at most 4 per request,
      the top-level one (automatic caching) included: "A maximum of 4 blocks with cache_control
      may be provided. Found {n}."; a 1h breakpoint after a 5m one (order: tools, system,
      messages): "{path}.cache_control.ttl: a ttl='1h' cache_control block must not come after
      a ttl='5m' cache_control block. ...";
    * images (every image block, those inside tool_result contents included; a nested one's
      path is ``messages.{i}.content.{j}.tool_result.content.{k}``):
        - more than ``max_images`` (100 by default; configurable, per model too):
          "messages: Too many images in request (max 100)";
        - media_type not image/jpeg, image/png, image/gif or image/webp:
          "{path}.image.source.base64.media_type: Input should be 'image/jpeg', ...";
        - base64 text over 5 MB (5,242,880 characters, measured on the base64 string, not the
          decoded bytes): "{path}.image.source.base64: image exceeds 5 MB maximum: {n} bytes >
          5242880 bytes";
        - data that is not base64, or whose signature is not a PNG/JPEG/GIF/WebP of the declared
          media_type: "{path}.image.source.base64.data: Image does not match the provided media
          type {media_type}"; the right signature but no readable size (a truncated file):
          "Could not process image";
        - a side over 8000 px: "{path}.image.source.base64.data: At least one of the image
          dimensions exceed max allowed size: 8000 pixels"; and when the request holds more
          than 20 images, a side over 2000 px: "... exceed max allowed size for many-image
          requests: 2000 pixels".
      The size is read with the standard library from the decoded bytes: PNG IHDR, JPEG SOFn
      marker, GIF logical screen, WebP VP8/VP8L/VP8X. ``"source": {"type": "url"}`` (or
      "file") cannot be measured offline: accepted, counted as an image.
    * PDF documents (``document`` blocks with a base64 ``application/pdf`` source; read with pypdf):
        - more than 100 pages in the whole request, every document block counted:
          "A maximum of 100 PDF pages may be provided.";
        - data that pypdf cannot read: "{path}.document.source.base64.data: The PDF specified was
          not valid."; an encrypted one: "{path}.document.source.base64.data: The PDF specified is
          password protected.";
        - a media_type other than application/pdf: "{path}.document.source.base64.media_type:
          Input should be 'application/pdf'".
      Billed (the stand-in's rule): ``DOCUMENT_PAGE_TOKENS`` (1,500) input tokens a page, for its
      text and the image of it the real API reads (it bills roughly 1,500-3,000 a page); a ``text``
      source as its text; a ``url`` or ``file`` source cannot be read offline: one page.
      A request over 32 MB is refused with 413 before any of this (above).
    * extended thinking: ``thinking.type`` other than enabled/adaptive/disabled; a budget
      (``enabled``) on a model that thinks only adaptively (the Claude 5 family, Opus 4.7+):
      "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive ...";
      ``budget_tokens`` under 1,024; ``max_tokens`` not above the budget; with thinking on,
      ``temperature`` other than 1, ``top_k``, or a ``tool_choice`` that forces a tool;
      a thinking block whose signature is not ours for its text: "messages.{i}.content.{j}:
      Invalid `signature` in `thinking` block" (a redacted block's data: "Invalid `data` in
      `redacted_thinking` block"), in any turn; a thinking block outside an assistant message;
      with thinking on and the request ending in tool results, the current tool loop's last
      assistant message not starting with a thinking block: "messages.{i}.content.0.type:
      Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is
      enabled, a final `assistant` message must start with a thinking block ..."; and an assistant
      message of the current tool loop (the messages after its last plain user message) whose
      thinking blocks are not exactly those this server sent with its tool calls (one changed,
      reordered or dropped): "messages.{i}.content: `thinking` or `redacted_thinking` blocks in
      the latest assistant message cannot be modified. ..."; an earlier turn's thinking may be
      dropped, as the API allows;
    * the prompt estimate over the model's context window (200,000 tokens by default;
      configurable, per model too): "prompt is too long: {n} tokens > {max} maximum".

Token estimate (deterministic; the WHOLE prompt: tools, system, messages)
    prompt_tokens = 4 (fixed request overhead) + the sum over the prompt's blocks of
      * a text-like part: ceil(characters / 4), where the part is: a text block's text (a
        string system or message content counts as one text block); a tool definition's
        canonical JSON (``cache_control`` left out); a tool_use block's canonical JSON of
        ``{"name", "input"}``; any other block's canonical JSON (``cache_control`` left out);
      * an image: ceil(w * h / 750) after the API's own downscale (one scale factor, aspect
        ratio kept: s = min(1, 1568 / long edge, sqrt(1,150,000 / (w * h))), w' = max(1,
        floor(w * s)), likewise h'); an image that cannot be measured (url/file) counts 1,534
        (ceil(1,150,000 / 750), the most any image can cost);
      * a tool_result block: the sum of its content's parts (a string content is one text part).
    canonical JSON = ``json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

Prompt caching (as Anthropic bills it)
    The prompt is a sequence of cacheable blocks, in order: each tool, each system block, each
    content block of each message (a tool_result with its contents is one block; a
    ``cache_control`` inside a tool_result's content marks that tool_result). Breakpoints are
    the blocks carrying ``cache_control``, plus the last block when the request has a top-level
    ``cache_control`` (automatic caching). A breakpoint's prefix (every block up to and
    including it) is cacheable when its tokens (the sum above, without the 4 of overhead) are
    at least 1,024 (2,048 when the model id contains "haiku"); a smaller one is silently not
    cached. The cache lives in the server, keyed by the model and a chained SHA-256 of the
    prefix's canonical JSON with ``cache_control`` left out (so the same prefix with or
    without a marker matches; a string content equals one text block), and holds the prefix's
    tokens, TTL and expiry. For a request with at least one breakpoint:
      * read: the longest live entry among the prefixes ending at each breakpoint or at one of
        the 19 blocks before it (the API's 20-block lookback) -> ``cache_read_input_tokens`` =
        that prefix's tokens; the read refreshes its expiry (now + its TTL);
      * write: every cacheable breakpoint past the read prefix stores its prefix (expiry now +
        its TTL); ``cache_creation_input_tokens`` = tokens from the end of the read prefix to
        the last cacheable breakpoint, split in ``cache_creation`` into
        ``ephemeral_1h_input_tokens`` / ``ephemeral_5m_input_tokens`` by the TTL of the
        breakpoint that closes each segment;
      * ``input_tokens`` = prompt_tokens - cache read - cache write (never below the overhead).
    A request without any ``cache_control`` reads and writes nothing. Expiry runs on the
    server's cache clock: ``time.monotonic()`` + ``clock_offset_seconds``, moved forward by
    ``POST /_standin/clock`` / ``StandinServer.advance_clock`` (a test checks a 5-minute entry
    is gone after 6 minutes without sleeping).

Usage (deterministic; distinct between the requests of a conversation, as its prompt grows)
    input_tokens + cache_read_input_tokens + cache_creation_input_tokens = prompt_tokens
    cache_creation = {"ephemeral_5m_input_tokens": a, "ephemeral_1h_input_tokens": b}, a + b =
    cache_creation_input_tokens; service_tier "standard"
    output_tokens = 1 + words of the reply text
                    + sum(len(json.dumps(tool input)) // 10 + 1 per tool_use)
                    + ceil(characters / 4) of each thinking block's text (a redacted block's data)
    A thinking block counts in the prompt only inside the current tool loop: the API strips
    earlier turns' thinking and does not count it.
    ``compute_usage(body, content, cache=None, now=0.0)`` computes it without side effects.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import copy
import hashlib
import functools
import hmac
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SERVER_NAME = "anthropic-standin"
DEFAULT_MODEL = "claude-standin"
_RECORDED_HEADERS = (
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "user-agent",
    "x-stainless-retry-count",
    "x-stainless-timeout",
)
_SECRET_HEADERS = ("x-api-key", "authorization")


# --------------------------------------------------------------------------- helpers


def _hex(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


def _error_body(err_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": err_type, "message": message}}


def _text_of(content: Any) -> str:
    """Text of a message content (a string or a list of blocks); tool results excluded."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _tool_results(content: Any) -> list[dict]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _iter_blocks(content: Any):
    """All blocks of a content, tool_result contents included."""
    if not isinstance(content, list):
        return
    for b in content:
        if not isinstance(b, dict):
            continue
        yield b
        if b.get("type") == "tool_result":
            yield from _iter_blocks(b.get("content"))


def _count_images(messages: list) -> tuple[int, int]:
    count = 0
    total = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        for b in _iter_blocks(m.get("content")):
            if b.get("type") != "image":
                continue
            src = b.get("source") or {}
            if src.get("type") == "base64":
                count += 1
                data = src.get("data") or ""
                try:
                    total += len(base64.b64decode(data))
                except (binascii.Error, ValueError):
                    total += len(data) * 3 // 4
            elif src.get("type") == "url":
                count += 1
    return count, total


def _system_text(system: Any) -> str:
    return _text_of(system) if system is not None else ""


def _find_member_id(system: str) -> str:
    m = re.search(r'<member\s+id="([^"]+)"', system)
    if m:
        return m.group(1)
    m = re.search(r"\bID:\s*([^\s<>\"']+)", system)
    if m:
        return m.group(1)
    return "unknown"


_EXPR_CANDIDATE = re.compile(r"[\d(][\d\s+\-*/().^]*")
_HAS_OPERATION = re.compile(r"\d\s*\)*\s*[-+*/^]\s*\(*\s*[-+]?\s*\.?\d")


def _find_expression(text: str) -> str | None:
    for m in _EXPR_CANDIDATE.finditer(text):
        expr = m.group(0).strip().rstrip("+-*/^. (").strip()
        if _HAS_OPERATION.search(expr):
            # drop unmatched closing parentheses at the end
            while expr.endswith(")") and expr.count(")") > expr.count("("):
                expr = expr[:-1].rstrip()
            return expr
    return None


def _chunk_text(text: str, words: int = 3) -> list[str]:
    """Split text into chunks of about ``words`` words; "".join(chunks) == text."""
    if not text:
        return []
    tokens = re.findall(r"\s*\S+\s*|\s+", text)
    chunks = ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    return chunks or [text]


def _chunk_json(s: str, size: int = 12) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


# --------------------------------------------------------------------------- limits

MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_IMAGE_BASE64_CHARS = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 8000
MANY_IMAGES_THRESHOLD = 20  # more images than this in a request: the stricter side limit below
MANY_IMAGES_MAX_SIDE = 2000
DEFAULT_MAX_IMAGES = 100
DEFAULT_CONTEXT_WINDOW = 200_000
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

MAX_CACHE_BREAKPOINTS = 4
CACHE_LOOKBACK_BLOCKS = 20
CACHE_TTL_SECONDS = {"5m": 300, "1h": 3600}
MIN_CACHEABLE_TOKENS = 1024
MIN_CACHEABLE_TOKENS_HAIKU = 2048

REQUEST_OVERHEAD_TOKENS = 4
CHARS_PER_TOKEN = 4
IMAGE_MAX_LONG_EDGE = 1568
IMAGE_MAX_PIXELS = 1_150_000
IMAGE_PIXELS_PER_TOKEN = 750
UNMEASURED_IMAGE_TOKENS = -(-IMAGE_MAX_PIXELS // IMAGE_PIXELS_PER_TOKEN)  # 1534

CONFIG_KEYS = ("context_window", "max_images", "clock_offset_seconds", "latency_ms")


class Refusal(Exception):
    """A request the real API refuses: HTTP status, Anthropic error type, message."""

    def __init__(self, message: str, status: int = 400, err_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.err_type = err_type
        self.message = message

    def error(self) -> dict:
        return {"type": self.err_type, "message": self.message}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _text_tokens(text: str) -> int:
    return _ceil_div(len(text), CHARS_PER_TOKEN)


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


# ---- images


def image_format(data: bytes) -> str | None:
    """The media type a file's signature says it is (PNG, JPEG, GIF, WebP), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP file, read from its header; None if unreadable."""
    size: tuple[int, int] | None = None
    kind = image_format(data)
    if kind == "image/png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    elif kind == "image/jpeg":
        size = _jpeg_size(data)
    elif kind == "image/gif":
        if len(data) >= 10:
            size = (int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"))
    elif kind == "image/webp":
        chunk = data[12:16]
        if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
            size = (int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF)
        elif chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif chunk == b"VP8X" and len(data) >= 30:
            size = (int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def image_tokens(width: int, height: int) -> int:
    """ceil(w * h / 750) after the API's downscale to <= 1568 px long edge and <= 1.15 MP."""
    scale = min(1.0, IMAGE_MAX_LONG_EDGE / max(width, height), math.sqrt(IMAGE_MAX_PIXELS / (width * height)))
    w = max(1, math.floor(width * scale))
    h = max(1, math.floor(height * scale))
    return _ceil_div(w * h, IMAGE_PIXELS_PER_TOKEN)


class _Image:
    """One image block of a request, as far as the limits and the estimate need it."""

    __slots__ = ("path", "source_type", "media_type", "data_chars", "has_data", "decodable", "format", "size")

    def __init__(self, path: str, block: dict) -> None:
        self.path = path
        src = block.get("source")
        src = src if isinstance(src, dict) else {}
        self.source_type = src.get("type")
        self.media_type = src.get("media_type")
        data = src.get("data")
        self.has_data = isinstance(data, str)
        self.data_chars = len(data) if isinstance(data, str) else 0
        self.decodable = False
        self.format: str | None = None
        self.size: tuple[int, int] | None = None
        if self.source_type == "base64" and isinstance(data, str) and len(data) <= MAX_IMAGE_BASE64_CHARS:
            try:
                decoded = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return
            self.decodable = True
            self.format = image_format(decoded)
            self.size = image_dimensions(decoded)

    @property
    def tokens(self) -> int:
        return image_tokens(*self.size) if self.size else UNMEASURED_IMAGE_TOKENS


# ---- the prompt as a sequence of cacheable blocks


class _Unit:
    """One cacheable block of the prompt (a tool, a system block, a message content block)."""

    __slots__ = ("key", "tokens")

    def __init__(self, key: Any, tokens: int) -> None:
        self.key = key
        self.tokens = tokens


# ---- PDF documents
DOCUMENT_PAGE_TOKENS = 1_500  # the stand-in's bill for a page: its text and its image (real: ~1,500-3,000)
MAX_PDF_PAGES = 100  # a request's PDF pages, all documents together


@functools.lru_cache(maxsize=64)
def pdf_pages(data: bytes) -> int | str:
    """The page count of a PDF, or why the real API would refuse it (its words)."""
    import io
    import logging

    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return "The PDF specified is password protected."
        pages = len(reader.pages)
    except Exception:  # noqa: BLE001 - any failure to read it
        return "The PDF specified was not valid."
    return pages if pages > 0 else "The PDF specified was not valid."


class _Document:
    """A document block of the request: its pages (and tokens), or the refusal it earns."""

    def __init__(self, path: str, block: dict) -> None:
        self.path = path
        self.pages = 1
        self.error: str | None = None
        source = block.get("source") or {}
        kind = source.get("type")
        self.tokens = DOCUMENT_PAGE_TOKENS
        if kind == "text":
            self.pages, self.tokens = 0, _text_tokens(str(source.get("data") or ""))
        elif kind == "base64":
            if source.get("media_type") != "application/pdf":
                self.error = f"{path}.document.source.base64.media_type: Input should be 'application/pdf'"
                return
            try:
                data = base64.b64decode(source.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                data = b""
            pages = pdf_pages(data)
            if isinstance(pages, str):
                self.error = f"{path}.document.source.base64.data: {pages}"
                return
            self.pages, self.tokens = pages, pages * DOCUMENT_PAGE_TOKENS


def _count_documents(messages: list) -> tuple[int, int]:
    """How many document blocks the messages hold, and their pages."""
    docs = [_Document("", b) for m in messages if isinstance(m, dict) for b in _iter_blocks(m.get("content"))
            if b.get("type") == "document"]
    return len(docs), sum(d.pages for d in docs if d.error is None)


class Prompt:
    """A request's prompt: its cacheable blocks (tools, system, messages), the tokens of each,
    its cache breakpoints, its images and its documents. Built by ``analyse_prompt``; no side effects."""

    def __init__(self) -> None:
        self.units: list[_Unit] = []
        self.breakpoints: list[tuple[int, str, str]] = []  # (unit index, ttl, json path)
        self.bad_cache_control: list[tuple[str, str]] = []  # (json path, message)
        self.images: list[_Image] = []
        self.documents: list[_Document] = []
        self._cumulative: list[int] | None = None
        self.count_thinking = True  # the blocks being added belong to the current tool loop

    @property
    def cumulative(self) -> list[int]:
        """cumulative[k] = tokens of units[0..k] (overhead excluded)."""
        if self._cumulative is None:
            total, out = 0, []
            for u in self.units:
                total += u.tokens
                out.append(total)
            self._cumulative = out
        return self._cumulative

    @property
    def tokens(self) -> int:
        """The estimated prompt tokens: the fixed overhead plus every block."""
        return REQUEST_OVERHEAD_TOKENS + (self.cumulative[-1] if self.units else 0)

    def prefix_keys(self, model: str) -> list[str]:
        """keys[k]: the cache key of the prefix units[0..k] for ``model`` (a chained SHA-256)."""
        keys = []
        digest = hashlib.sha256(("model:" + model).encode()).digest()
        for u in self.units:
            digest = hashlib.sha256(digest + _canonical(u.key).encode()).digest()
            keys.append(digest.hex())
        return keys


def _cache_marker(prompt: Prompt, holder: Any, unit_index: int, path: str) -> None:
    if not isinstance(holder, dict) or holder.get("cache_control") is None:
        return
    cc = holder["cache_control"]
    if holder.get("type") in THINKING_BLOCKS:  # the API: thinking blocks cannot be marked directly
        kind = holder["type"]
        prompt.bad_cache_control.append((path, f"{path}.{kind}.cache_control: Extra inputs are not permitted"))
        return
    if not isinstance(cc, dict):
        prompt.bad_cache_control.append((path, f"{path}.cache_control: Input should be a valid dictionary"))
        return
    if cc.get("type") != "ephemeral":
        prompt.bad_cache_control.append((path, f"{path}.cache_control.type: Input should be 'ephemeral'"))
        return
    ttl = cc.get("ttl", "5m")
    if ttl is None:
        ttl = "5m"
    if ttl not in CACHE_TTL_SECONDS:
        prompt.bad_cache_control.append((path, f"{path}.cache_control.ttl: Input should be '5m' or '1h'"))
        return
    prompt.breakpoints.append((unit_index, ttl, path))


def _block_tokens(prompt: Prompt, block: Any, path: str, unit_index: int) -> int:
    """Tokens of one content block (images recorded in ``prompt.images``; cache markers nested in
    a tool_result's content recorded against the tool_result's unit)."""
    if not isinstance(block, dict):
        return _text_tokens(_canonical(block))
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return _text_tokens(text if isinstance(text, str) else _canonical(text))
    if kind == "image":
        image = _Image(path, block)
        prompt.images.append(image)
        return image.tokens
    if kind == "document":
        document = _Document(path, block)
        prompt.documents.append(document)
        return document.tokens
    if kind == "tool_use":
        return _text_tokens(_canonical({"name": block.get("name"), "input": block.get("input")}))
    if kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            return _text_tokens(inner)
        if isinstance(inner, list):
            total = 0
            for k, sub in enumerate(inner):
                sub_path = f"{path}.tool_result.content.{k}"
                _cache_marker(prompt, sub, unit_index, sub_path)
                total += _block_tokens(prompt, sub, sub_path, unit_index)
            return total
        return 0
    if kind in THINKING_BLOCKS:
        if not prompt.count_thinking:
            return 0  # an earlier turn's thinking: the API strips it and does not count it
        if kind == "thinking":
            return _text_tokens(str(block.get("thinking", "")))
    return _text_tokens(_canonical(_without_cache_control(block)))


def _text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def _add_content(prompt: Prompt, content: Any, where: list, path: str) -> None:
    """Add the units of one content, the system prompt's or a message's, keyed from ``where``: a non-empty
    string is one text block; each block of a list is a unit of its own, its cache marker read at
    ``path``.j."""
    if isinstance(content, str):
        if content:
            prompt.units.append(_Unit([*where, _text_block(content)], _text_tokens(content)))
    elif isinstance(content, list):
        for j, block in enumerate(content):
            index = len(prompt.units)
            block_path = f"{path}.{j}"
            _cache_marker(prompt, block, index, block_path)
            tokens = _block_tokens(prompt, block, block_path, index)
            prompt.units.append(_Unit([*where, _without_cache_control(block)], tokens))


def analyse_prompt(body: dict) -> Prompt:
    """The prompt of a request body (tools, then system, then messages), with no side effects."""
    prompt = Prompt()
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            index = len(prompt.units)
            _cache_marker(prompt, tool, index, f"tools.{i}")
            clean = _without_cache_control(tool)
            prompt.units.append(_Unit(["tools", clean], _text_tokens(_canonical(clean))))

    _add_content(prompt, body.get("system"), ["system"], "system")

    messages = body.get("messages")
    loop_start = tool_loop_start(messages) if isinstance(messages, list) else 0
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        prompt.count_thinking = i >= loop_start
        _add_content(prompt, message.get("content"), ["messages", i, message.get("role")], f"messages.{i}.content")

    prompt.count_thinking = True
    top = body.get("cache_control")
    if top is not None and prompt.units:
        _cache_marker(prompt, body, len(prompt.units) - 1, "")
    elif top is not None:
        _cache_marker(prompt, body, -1, "")
    # a top-level marker's path is "" -> report it as "cache_control"
    prompt.bad_cache_control = [(p, m.lstrip(".")) for p, m in prompt.bad_cache_control]
    return prompt


# ---- extended thinking: signed blocks, and the tool loop that must send them back unchanged

THINKING_BLOCKS = ("thinking", "redacted_thinking")
MIN_THINKING_BUDGET = 1024
# The key the stand-in signs its thinking with (the real API's signatures are opaque to clients too).
_THINKING_KEY = b"anthropic-standin-thinking-key"
# Models that take only adaptive thinking (manual budgets were removed with Claude Opus 4.7).
_ADAPTIVE_ONLY = re.compile(r"claude-(?:(?:opus|sonnet|haiku)-(?:[5-9]|\d\d)|opus-4-(?:[7-9]|\d\d))")
MODIFIED_THINKING = ("`thinking` or `redacted_thinking` blocks in the latest assistant message cannot be modified. "
                     "These blocks must remain as they were in the original response.")


def thinking_signature(text: str) -> str:
    """The signature of a thinking block's text: an HMAC a client cannot forge."""
    mac = hmac.new(_THINKING_KEY, text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(b"standin-thinking:" + mac).decode("ascii")


def redacted_data() -> str:
    """A redacted_thinking block's opaque data: a nonce and its HMAC."""
    nonce = uuid.uuid4().bytes
    return base64.b64encode(nonce + hmac.new(_THINKING_KEY, nonce, hashlib.sha256).digest()[:16]).decode("ascii")


def _redacted_valid(data: Any) -> bool:
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32 and hmac.compare_digest(raw[16:], hmac.new(_THINKING_KEY, raw[:16], hashlib.sha256).digest()[:16])


def thinking_mode(body: dict) -> str | None:
    """``"enabled"`` (a budget) or ``"adaptive"`` when the request asks for thinking, else None."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        return thinking["type"]
    return None


def tool_loop_start(messages: list) -> int:
    """The index of the current tool loop's first message: the last user message that is not only
    tool results (the messages after it are the model's tool calls and their results)."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        if not (isinstance(content, list) and content
                and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)):
            return i
    return 0


def _check_thinking(body: dict, messages: list) -> None:
    """The request's thinking settings, and every thinking block it sends back: signed by us,
    unchanged; with thinking on, the current tool loop's last assistant message starts with one."""
    thinking = body.get("thinking")
    mode = thinking_mode(body)
    if thinking is not None and (not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive", "disabled")):
        raise Refusal("thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'")
    model = str(body.get("model") or DEFAULT_MODEL)
    if mode == "enabled":
        if _ADAPTIVE_ONLY.search(model):
            raise Refusal("thinking.type.enabled is not supported for this model. Use thinking.type.adaptive "
                          "and output_config.effort to control thinking behavior.")
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET:
            raise Refusal(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}")
        if isinstance(body.get("max_tokens"), int) and body["max_tokens"] <= budget:
            raise Refusal("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
                          "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
    if mode is not None:
        if body.get("temperature") not in (None, 1, 1.0):
            raise Refusal("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation "
                          "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking")
        if body.get("top_k") is not None:
            raise Refusal("`top_k` must be unset when thinking is enabled.")
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            raise Refusal("Thinking may not be enabled when tool_choice forces tool use.")
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            kind = block.get("type")
            if kind in THINKING_BLOCKS and m.get("role") != "assistant":
                raise Refusal(f"messages.{i}.content.{j}: `{kind}` blocks may only appear in `assistant` messages")
            if kind == "thinking":
                text, signature = block.get("thinking"), block.get("signature")
                if not isinstance(text, str) or not isinstance(signature, str) or not hmac.compare_digest(
                        signature, thinking_signature(text)):
                    raise Refusal(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
            elif kind == "redacted_thinking" and not _redacted_valid(block.get("data")):
                raise Refusal(f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block")
    if mode is None:
        return
    start = tool_loop_start(messages)
    last = messages[-1] if messages else {}
    final = next((k for k in range(len(messages) - 1, start, -1) if messages[k].get("role") == "assistant"), None)
    if final is None or not _tool_results(last.get("content")):
        return
    content = messages[final].get("content")
    first = content[0] if isinstance(content, list) and content else {"type": "text"}
    if first.get("type") not in THINKING_BLOCKS:
        raise Refusal(
            f"messages.{final}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first.get('type')}`. "
            "When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the "
            "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from "
            "previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking")


def thinking_of(content: Any) -> list[dict]:
    """The thinking blocks of a content, in order, as the API compares them (cache_control aside)."""
    return [_without_cache_control(b) for b in content if isinstance(b, dict) and b.get("type") in THINKING_BLOCKS] \
        if isinstance(content, list) else []


def check_loop_thinking(messages: list, sent: Mapping[str, list[dict]]) -> None:
    """Each assistant message of the current tool loop sends back exactly the thinking blocks of the
    response that made its tool calls (``sent``: by tool_use id, what this server answered): none
    changed, reordered or dropped."""
    for i in range(tool_loop_start(messages) + 1, len(messages)):
        m = messages[i]
        content = m.get("content")
        if m.get("role") != "assistant" or not isinstance(content, list):
            continue
        ids = [b.get("id") for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        original = next((sent[x] for x in ids if x in sent), None)
        if original is not None and thinking_of(content) != original:
            raise Refusal(f"messages.{i}.content: {MODIFIED_THINKING}")


# ---- web search (the web_search_20250305 server tool)

WEB_SEARCH_TOOL = "web_search_20250305"
_SEARCH_KEY = b"anthropic-standin-web-search-key"
_SEARCH_ASK = re.compile(r"\bsearch the web for\s+(?P<query>\S.*?)[\s.?!]*$", re.IGNORECASE | re.DOTALL)
MODIFIED_SEARCH = "Invalid `encrypted_content` in `web_search_tool_result` block"
MODIFIED_CITATION = "Invalid `encrypted_index` in `web_search_result_location` citation"


def _search_mac(*parts: str) -> str:
    return hmac.new(_SEARCH_KEY, "\x1f".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def search_encrypted_content(url: str, title: str, page_age: str | None) -> str:
    """A search result's opaque ``encrypted_content``: a nonce and an HMAC binding it to the result."""
    nonce = _hex(16)
    return base64.b64encode(f"{nonce}:{_search_mac(nonce, url, title, page_age or '')}".encode()).decode("ascii")


def _encrypted_content_valid(result: Any) -> bool:
    if not isinstance(result, dict) or not isinstance(result.get("encrypted_content"), str):
        return False
    try:
        nonce, mac = base64.b64decode(result["encrypted_content"], validate=True).decode().split(":", 1)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(mac, _search_mac(nonce, str(result.get("url")), str(result.get("title")),
                                                str(result.get("page_age") or "")))


def citation_index(url: str, cited_text: str) -> str:
    """A citation's opaque ``encrypted_index``: an HMAC of what it cites."""
    return base64.b64encode(_search_mac(url, cited_text).encode()).decode("ascii")


def web_search_tool(body: dict) -> dict | None:
    """The request's web search server tool (None: it has none)."""
    return next((t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == WEB_SEARCH_TOOL), None)


def _check_web_search(body: dict, messages: list) -> None:
    """The web search tool's settings, and every search result and web citation sent back: as the
    stand-in returned them (their encrypted content and index unchanged); no more searches in the
    turn than its ``max_uses``."""
    tool = web_search_tool(body)
    if tool is not None:
        if tool.get("name") != "web_search":
            raise Refusal("tools.web_search_20250305.name: Input should be 'web_search'")
        max_uses = tool.get("max_uses")
        if max_uses is not None and (not isinstance(max_uses, int) or isinstance(max_uses, bool) or max_uses < 1):
            raise Refusal("tools.web_search_20250305.max_uses: Input should be greater than 0")
        if tool.get("allowed_domains") and tool.get("blocked_domains"):
            raise Refusal("tools.web_search_20250305: only one of allowed_domains or blocked_domains may be set")
        _check_user_location(tool.get("user_location"))
    searches = 0
    start = tool_loop_start(messages)
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind in ("server_tool_use", "web_search_tool_result") and m.get("role") != "assistant":
                raise Refusal(f"messages.{i}.content.{j}: `{kind}` blocks may only appear in `assistant` messages")
            if kind == "server_tool_use" and block.get("name") == "web_search" and i >= start:
                searches += 1
            if kind == "web_search_tool_result" and isinstance(block.get("content"), list):
                for k, result in enumerate(block["content"]):
                    if not _encrypted_content_valid(result):
                        raise Refusal(f"messages.{i}.content.{j}.content.{k}: {MODIFIED_SEARCH}")
            for k, citation in enumerate(block.get("citations") or [] if kind == "text" else []):
                if isinstance(citation, dict) and citation.get("type") == "web_search_result_location" and not \
                        hmac.compare_digest(str(citation.get("encrypted_index")),
                                            citation_index(str(citation.get("url")), str(citation.get("cited_text")))):
                    raise Refusal(f"messages.{i}.content.{j}.citations.{k}: {MODIFIED_CITATION}")
    if tool is not None and isinstance(tool.get("max_uses"), int) and searches > tool["max_uses"]:
        raise Refusal(f"tools.web_search_20250305.max_uses: the turn made {searches} searches, more than its "
                      f"max_uses ({tool['max_uses']})")


def _check_user_location(location: Any) -> None:
    """A web search tool's ``user_location`` as the API takes it: ``{"type": "approximate"}`` with any of
    ``city``, ``region`` (1-255 characters), ``country`` (2 characters), ``timezone`` (1-255 characters)."""
    if location is None:
        return
    where = "tools.web_search_20250305.user_location"
    if not isinstance(location, dict):
        raise Refusal(f"{where}: Input should be a valid dictionary")
    if location.get("type") != "approximate":
        raise Refusal(f"{where}.type: Input should be 'approximate'")
    for name, value in location.items():
        if name == "type":
            continue
        if name not in ("city", "region", "country", "timezone"):
            raise Refusal(f"{where}.{name}: Extra inputs are not permitted")
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refusal(f"{where}.{name}: Input should be a valid string")
        low, high = (2, 2) if name == "country" else (1, 255)
        if not low <= len(value) <= high:
            raise Refusal(f"{where}.{name}: String should have {'exactly 2 characters' if name == 'country' else f'between {low} and {high} characters'}")


def web_search_content(query: str, tool: dict) -> list[dict]:
    """A search's blocks: the server_tool_use, its results (two pages, in the allowed domains when
    the tool names some) and an answer citing the first."""
    domains = tool.get("allowed_domains") or ["example.org", "example.com"]
    use_id = "srvtoolu_" + _hex(24)
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40] or "result"
    results = []
    for n, domain in enumerate((domains * 2)[:2]):
        url, title, age = f"https://{domain}/{slug}-{n + 1}", f"{query[:60]} ({domain}, {n + 1})", f"{n + 1} days ago"
        results.append({"type": "web_search_result", "url": url, "title": title,
                        "encrypted_content": search_encrypted_content(url, title, age), "page_age": age})
    cited = f"The latest on {query[:80]}, as {domains[0]} reports it."
    first = results[0]
    return [
        {"type": "server_tool_use", "id": use_id, "name": "web_search", "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": use_id, "content": results},
        {"type": "text", "text": f"Here is what I found about {query[:80]}."},
        {"type": "text", "text": cited, "citations": [
            {"type": "web_search_result_location", "url": first["url"], "title": first["title"],
             "encrypted_index": citation_index(first["url"], cited), "cited_text": cited}]},
    ]


# ---- validation


def _model_limit(value: Any, model: str, default: int) -> int:
    if isinstance(value, dict):
        if model in value:
            return int(value[model])
        return int(value.get("default", default))
    return default if value is None else int(value)


def context_window_for(config: dict, model: str) -> int:
    return _model_limit(config.get("context_window"), model, DEFAULT_CONTEXT_WINDOW)


def max_images_for(config: dict, model: str) -> int:
    return _model_limit(config.get("max_images"), model, DEFAULT_MAX_IMAGES)


def min_cacheable_tokens(model: str) -> int:
    return MIN_CACHEABLE_TOKENS_HAIKU if "haiku" in (model or "").lower() else MIN_CACHEABLE_TOKENS


def _check_messages(messages: list) -> None:
    if not messages:
        raise Refusal("messages: at least one message is required")
    last = len(messages) - 1
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise Refusal(f"messages.{i}: Input should be a valid dictionary")
        if m.get("role") not in ("user", "assistant"):
            raise Refusal(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = m.get("content")
        if not isinstance(content, (str, list)):
            raise Refusal(f"messages.{i}.content: Field required" if content is None
                          else f"messages.{i}.content: Input should be a valid string or list")
        if content in ("", []) and not (i == last and m["role"] == "assistant"):
            raise Refusal(
                f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            )
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise Refusal(f"messages.{i}.content.{j}: Input should be a valid dictionary with a 'type'")


def _text_blocks(content: Any):
    """Every text of a content: a non-empty string content, text blocks, tool_result contents."""
    if isinstance(content, str):
        yield content
        return
    if not isinstance(content, list):
        return
    for b in content:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            yield b.get("text") if isinstance(b.get("text"), str) else ""
        elif b.get("type") == "tool_result":
            inner = b.get("content")
            if isinstance(inner, list):  # a string tool_result content may be empty
                yield from _text_blocks(inner)


def _check_text(messages: list, system: Any) -> None:
    last = len(messages) - 1
    for i, m in enumerate(messages):
        content = m.get("content")
        if content == "" and i == last:
            continue  # the optional empty final assistant message, checked above
        for text in _text_blocks(content):
            if text == "":
                raise Refusal("messages: text content blocks must be non-empty")
            if not text.strip():
                raise Refusal("messages: text content blocks must contain non-whitespace text")
    if isinstance(system, list):
        for text in _text_blocks(system):
            if text == "":
                raise Refusal("system: text content blocks must be non-empty")
            if not text.strip():
                raise Refusal("system: text content blocks must contain non-whitespace text")


def _check_tool_pairing(messages: list) -> None:
    def blocks(m: dict, kind: str) -> list[tuple[int, dict]]:
        content = m.get("content")
        if not isinstance(content, list):
            return []
        return [(j, b) for j, b in enumerate(content) if isinstance(b, dict) and b.get("type") == kind]

    for i, m in enumerate(messages):
        if m.get("role") == "user" and i > 0:
            previous = messages[i - 1]
            offered = {b.get("id") for _, b in blocks(previous, "tool_use")} if previous.get("role") == "assistant" else set()
            for j, b in blocks(m, "tool_result"):
                if b.get("tool_use_id") not in offered:
                    raise Refusal(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
        elif m.get("role") == "user":
            for j, b in blocks(m, "tool_result"):
                raise Refusal(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        if m.get("role") == "assistant" and i + 1 < len(messages):
            uses = [b.get("id") for _, b in blocks(m, "tool_use")]
            if not uses:
                continue
            following = messages[i + 1]
            answered = (
                {b.get("tool_use_id") for _, b in blocks(following, "tool_result")}
                if following.get("role") == "user"
                else set()
            )
            missing = [u for u in uses if u not in answered]
            if missing:
                raise Refusal(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(str(u) for u in missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )


def _check_cache_control(prompt: Prompt) -> None:
    if prompt.bad_cache_control:
        raise Refusal(prompt.bad_cache_control[0][1])
    if len(prompt.breakpoints) > MAX_CACHE_BREAKPOINTS:
        raise Refusal(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(prompt.breakpoints)}."
        )
    seen_5m = False
    for _, ttl, path in prompt.breakpoints:  # already in processing order: tools, system, messages, top level
        if ttl == "1h" and seen_5m:
            where = f"{path}.cache_control.ttl" if path else "cache_control.ttl"
            raise Refusal(
                f"{where}: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. "
                "Note that blocks are processed in the following order: `tools`, `system`, `messages`."
            )
        seen_5m = seen_5m or ttl == "5m"


def _check_documents(prompt: Prompt) -> None:
    for document in prompt.documents:
        if document.error:
            raise Refusal(document.error)
    if sum(d.pages for d in prompt.documents) > MAX_PDF_PAGES:
        raise Refusal(f"A maximum of {MAX_PDF_PAGES} PDF pages may be provided.")


def _check_images(prompt: Prompt, max_images: int) -> None:
    images = prompt.images
    if len(images) > max_images:
        raise Refusal(f"messages: Too many images in request (max {max_images})")
    many = len(images) > MANY_IMAGES_THRESHOLD
    for image in images:
        if image.source_type in ("url", "file"):
            continue  # cannot be measured offline
        if image.source_type != "base64":
            raise Refusal(
                f"{image.path}.image.source: Input tag '{image.source_type}' found using 'type' does not match "
                "any of the expected tags: 'base64', 'url', 'file'"
            )
        if image.media_type not in IMAGE_MEDIA_TYPES:
            raise Refusal(
                f"{image.path}.image.source.base64.media_type: Input should be "
                "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
            )
        if not image.has_data:
            raise Refusal(f"{image.path}.image.source.base64.data: Field required")
        if image.data_chars > MAX_IMAGE_BASE64_CHARS:
            raise Refusal(
                f"{image.path}.image.source.base64: image exceeds 5 MB maximum: "
                f"{image.data_chars} bytes > {MAX_IMAGE_BASE64_CHARS} bytes"
            )
        if not image.decodable or image.format != image.media_type:
            raise Refusal(
                f"{image.path}.image.source.base64.data: Image does not match the provided media type {image.media_type}"
            )
        if image.size is None:
            raise Refusal("Could not process image")
        if max(image.size) > MAX_IMAGE_SIDE:
            raise Refusal(
                f"{image.path}.image.source.base64.data: At least one of the image dimensions exceed "
                f"max allowed size: {MAX_IMAGE_SIDE} pixels"
            )
        if many and max(image.size) > MANY_IMAGES_MAX_SIDE:
            raise Refusal(
                f"{image.path}.image.source.base64.data: At least one of the image dimensions exceed "
                f"max allowed size for many-image requests: {MANY_IMAGES_MAX_SIDE} pixels"
            )


def validate_request(body: Any, config: dict | None = None, prompt: Prompt | None = None,
                     check_context_window: bool = True) -> Prompt:
    """Refuse (raise ``Refusal``) what the real Messages API refuses; return the analysed prompt."""
    config = config or {}
    if not isinstance(body, dict):
        raise Refusal("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Refusal("messages: Field required")
    _check_messages(messages)
    _check_text(messages, body.get("system"))
    _check_thinking(body, messages)
    _check_web_search(body, messages)
    prompt = prompt or analyse_prompt(body)
    _check_cache_control(prompt)
    model = str(body.get("model") or DEFAULT_MODEL)
    _check_images(prompt, max_images_for(config, model))
    _check_documents(prompt)
    _check_tool_pairing(messages)
    if check_context_window:
        limit = context_window_for(config, model)
        if prompt.tokens > limit:
            raise Refusal(f"prompt is too long: {prompt.tokens} tokens > {limit} maximum")
    return prompt


# ---- prompt caching


class CacheEntry:
    """A cached prefix: its tokens, TTL ("5m"/"1h") and expiry (cache-clock seconds)."""

    __slots__ = ("tokens", "ttl", "expires_at")

    def __init__(self, tokens: int, ttl: str, expires_at: float) -> None:
        self.tokens = tokens
        self.ttl = ttl
        self.expires_at = expires_at

    def __repr__(self) -> str:
        return f"CacheEntry(tokens={self.tokens}, ttl={self.ttl!r}, expires_at={self.expires_at})"


class CachePlan:
    """What a request reads from and writes to the prompt cache (computed, not yet applied)."""

    def __init__(self) -> None:
        self.read_tokens = 0
        self.read_key: str | None = None
        self.write_5m = 0
        self.write_1h = 0
        self.stores: list[tuple[str, int, str]] = []  # (key, tokens, ttl)

    @property
    def write_tokens(self) -> int:
        return self.write_5m + self.write_1h


def plan_cache(prompt: Prompt, model: str, cache: Mapping[str, CacheEntry] | None, now: float) -> CachePlan:
    """The cache reads and writes of a request, given the cache's entries at time ``now``.

    Pure: ``cache`` is not modified (``apply_cache_plan`` does that)."""
    plan = CachePlan()
    if not prompt.breakpoints or not prompt.units:
        return plan
    cache = cache or {}
    keys = prompt.prefix_keys(model)
    cumulative = prompt.cumulative

    best = -1
    for index, _, _ in prompt.breakpoints:
        for k in range(index, max(-1, index - CACHE_LOOKBACK_BLOCKS), -1):
            if k <= best:
                break
            entry = cache.get(keys[k])
            if entry is not None and entry.expires_at > now:
                best = k
                break
    if best >= 0:
        plan.read_tokens = cumulative[best]
        plan.read_key = keys[best]

    ttl_at: dict[int, str] = {}
    for index, ttl, _ in prompt.breakpoints:
        if ttl_at.get(index) != "1h":
            ttl_at[index] = ttl
    minimum = min_cacheable_tokens(model)
    written = plan.read_tokens
    for index in sorted(ttl_at):
        if index <= best or cumulative[index] < minimum:
            continue
        segment = cumulative[index] - written
        written = cumulative[index]
        if ttl_at[index] == "1h":
            plan.write_1h += segment
        else:
            plan.write_5m += segment
        plan.stores.append((keys[index], cumulative[index], ttl_at[index]))
    return plan


def apply_cache_plan(plan: CachePlan, cache: dict[str, CacheEntry], now: float) -> None:
    """Refresh the entry read and store the entries written (the caller holds the lock)."""
    for key in [k for k, e in cache.items() if e.expires_at <= now]:
        del cache[key]
    if plan.read_key is not None and plan.read_key in cache:
        entry = cache[plan.read_key]
        entry.expires_at = now + CACHE_TTL_SECONDS[entry.ttl]
    for key, tokens, ttl in plan.stores:
        cache[key] = CacheEntry(tokens, ttl, now + CACHE_TTL_SECONDS[ttl])


def output_tokens(content: list[dict]) -> int:
    output = 1
    for block in content:
        if block.get("type") == "text":
            output += len(block.get("text", "").split())
        elif block.get("type") == "tool_use":
            output += len(json.dumps(block.get("input", {}))) // 10 + 1
        elif block.get("type") == "thinking":  # thinking is billed as output
            output += _text_tokens(block.get("thinking", ""))
        elif block.get("type") == "redacted_thinking":
            output += _text_tokens(block.get("data", ""))
    return output


def usage_of(prompt: Prompt, plan: CachePlan, content: list[dict]) -> dict:
    """The usage block for a prompt, its cache plan and the content produced."""
    return {
        "input_tokens": prompt.tokens - plan.read_tokens - plan.write_tokens,
        "cache_creation_input_tokens": plan.write_tokens,
        "cache_read_input_tokens": plan.read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": plan.write_5m,
            "ephemeral_1h_input_tokens": plan.write_1h,
        },
        "output_tokens": output_tokens(content),
        "service_tier": "standard",
    }


def compute_usage(body: dict, content: list[dict], cache: Mapping[str, CacheEntry] | None = None,
                  now: float = 0.0) -> dict:
    """The deterministic usage of a request and the content produced for it, given the prompt
    cache's entries at cache-clock time ``now`` (none by default). No side effects."""
    prompt = analyse_prompt(body)
    plan = plan_cache(prompt, str(body.get("model") or DEFAULT_MODEL), cache, now)
    return usage_of(prompt, plan, content)


def estimate_prompt_tokens(body: dict) -> int:
    """The estimated prompt tokens of a request (what ``count_tokens`` answers)."""
    return analyse_prompt(body).tokens


def _tool_use_block(name: str, tool_input: dict, block_id: str | None = None) -> dict:
    return {"type": "tool_use", "id": block_id or "toolu_" + _hex(24), "name": name, "input": tool_input}


def summary_reply(prompt: str) -> str:
    """A summariser's reply (the system prompt asks to summarise a conversation): the summary so far,
    then each "User:" line of the new part cut to 120 characters: a deterministic summary that keeps
    what each user message opened with."""
    before, _, new_part = prompt.partition("The next part of the conversation:")
    summary = before.replace("The summary so far:", "").strip()
    lines = [line[:120] for line in new_part.splitlines() if line.startswith("User:")]
    return "\n".join(([summary] if summary else []) + lines) or "Nothing to summarise."


_REMIND = re.compile(r"\bremind me to (?P<what>.+?)\s+at\s+(?P<time>\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?)",
                     re.IGNORECASE)


def _clock(text: str) -> str:
    """A time of day as 24-hour HH:MM ("6pm" -> "18:00", "18:00" -> "18:00")."""
    match = re.match(r"(\d{1,2})(?::(\d{2}))?\s*([ap])?", text.strip(), re.IGNORECASE)
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3):
        hour = hour % 12 + (12 if match.group(3).lower() == "p" else 0)
    return f"{hour:02d}:{minute:02d}"


_REMEMBER = re.compile(r"\bremember\b[\s,:]*(?:that\s+)?(?P<fact>\S.*)", re.IGNORECASE | re.DOTALL)
_FORGET = re.compile(r"\bforget\b[\s,:]*(?:that\s+)?(?P<fact>\S.*)", re.IGNORECASE | re.DOTALL)
RECALL_MARKER = "[What you remember about this user"
_RECALL_LINE = re.compile(r"^\[([0-9a-f]{8})\] (.+)$")
_CONSOLIDATION_LIMITS = re.compile(
    r"at most (\d+) memories of at most (\d+) characters each, (\d+) characters in all")


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.casefold()) if len(w) >= 4}


def recall_text(messages: list) -> str | None:
    """The recall of the user's memories a request's messages hold (its text), or None."""
    for m in messages:
        text = _text_of(m.get("content")) if isinstance(m, dict) else ""
        if text.startswith(RECALL_MARKER):
            return text
    return None


def recalled_memories(messages: list) -> list[tuple[str, str]]:
    """The (id, text) lines of the recall of the user's memories in a request's messages."""
    text = recall_text(messages) or ""
    return [match.groups() for line in text.splitlines() if (match := _RECALL_LINE.match(line))]


def _best_memories(memories: list[tuple[str, str]], text: str, most: int) -> list[tuple[str, str]]:
    """The memories sharing most words (of 4+ letters) with ``text``, best first, ties oldest first."""
    wanted = _words(text)
    scored = [(len(wanted & _words(m)), i) for i, (_, m) in enumerate(memories)]
    return [memories[i] for score, i in sorted(scored, key=lambda x: (-x[0], x[1])) if score][:most]


def consolidation_reply(prompt: str) -> str:
    """A memory consolidation's reply (see "Default behaviour"): deterministic, and within the
    prompt's limits whenever the distinct memories alone fit them."""
    limits = _CONSOLIDATION_LIMITS.search(prompt)
    each, total = (int(limits.group(2)), int(limits.group(3))) if limits else (500, 4000)
    unique: dict[str, str] = {}
    for line in prompt.splitlines():
        if line.startswith("- ") and line[2:].strip():
            text = line[2:].strip()
            key = " ".join(re.findall(r"\w+", text.casefold()))
            unique.pop(key, None)  # the newest wording, at its newest place
            unique[key] = text
    groups: dict[str, tuple[str, list[str]]] = {}
    for text in unique.values():
        words = text.split()
        prefix, rest = (" ".join(words[:3]), " ".join(words[3:])) if len(words) >= 4 else (text, "")
        groups.setdefault(prefix.casefold(), (prefix, []))[1].append(rest)
    # each line: its opening words, its items (the first, then the newest ones) and how many were
    # folded (a line merged before counts its own items and its "and N more")
    merged = []
    for prefix, rests in groups.values():
        items, more = [], 0
        for part in (p for rest in rests for p in rest.split(", ") if p):
            folded = re.fullmatch(r"and (\d+) more", part)
            if folded:
                more += int(folded.group(1))
            else:
                items.append(part)
        merged.append([prefix, items, more])

    def line(prefix: str, items: list[str], more: int) -> str:
        shown = items[:1] + ([f"and {more} more"] if more else []) + items[1:]
        return f"{prefix} {', '.join(shown)}" if shown else prefix

    def lines() -> list[str]:
        return [line(*m) for m in merged]

    while True:
        current = lines()
        if all(len(x) <= each for x in current) and sum(map(len, current)) <= total:
            break
        foldable = [i for i, m in enumerate(merged) if len(m[1]) >= 3]
        if not foldable:
            break  # nothing more to fold: the answer is what it is
        longest = max(foldable, key=lambda i: len(current[i]))
        del merged[longest][1][1]  # the oldest item after the first
        merged[longest][2] += 1
    return "\n".join(f"- {line}" for line in lines()) or "- (nothing to remember)"


def thinking_content(step: dict, body: dict) -> list[dict]:
    """The thinking blocks that open a response when the request asks for thinking: the step's
    ``"thinking"`` text (else a line about the last message), signed; ``"redacted_thinking": true``
    adds a redacted block after it."""
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    results = _tool_results(last.get("content"))
    about = ("the tool results: " + " ".join(_text_of(r.get("content")) for r in results)) if results \
        else "the question: " + _text_of(last.get("content"))
    text = str(step.get("thinking") or f"Let me think about {about[:160].strip()}")
    blocks = [{"type": "thinking", "thinking": text, "signature": thinking_signature(text)}]
    if step.get("redacted_thinking"):
        blocks.append({"type": "redacted_thinking", "data": redacted_data()})
    return blocks


def default_content(body: dict) -> list[dict]:
    """The default (unscripted) reply content for a request."""
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    tools = body.get("tools") or []
    tool_names = {t.get("name") for t in tools if isinstance(t, dict)}
    last_content = last.get("content")
    results = _tool_results(last_content) if last.get("role") == "user" else []

    if results:
        text = "\n".join(_text_of(r.get("content")) for r in results)
        return [{"type": "text", "text": f"The tool returned: {text[:200]}"}]

    user_text = _text_of(last_content) if last.get("role") == "user" else ""
    search = web_search_tool(body)
    if search is not None and last.get("role") == "user" and (match := _SEARCH_ASK.search(user_text)):
        return web_search_content(match.group("query").strip(), search)
    if tool_names and last.get("role") == "user":
        if "remember" in tool_names and (match := _REMEMBER.search(user_text)):
            fact = match.group("fact").strip().rstrip(".!?").strip()
            if fact:
                return [_tool_use_block("remember", {"text": fact})]
        if "set_reminder" in tool_names and (match := _REMIND.search(user_text)):
            return [_tool_use_block("set_reminder", {"text": match.group("what").strip(),
                                                     "time": _clock(match.group("time"))})]
        if "forget_memory" in tool_names and (match := _FORGET.search(user_text)):
            best = _best_memories(recalled_memories(messages), match.group("fact"), 1)
            if best:
                return [_tool_use_block("forget_memory", {"memory_id": best[0][0]})]
    if "?" in user_text and _find_expression(user_text) is None:
        best = _best_memories(recalled_memories(messages), user_text, 3)
        if best:
            return [{"type": "text", "text": "From what I remember: " + "; ".join(m for _, m in best) + "."}]
    if tool_names and last.get("role") == "user":
        if "delegate_task_to_member" in tool_names:
            member_id = _find_member_id(_system_text(body.get("system")))
            return [
                _tool_use_block("delegate_task_to_member", {"member_id": member_id, "task": user_text})
            ]
        if "calculator" in tool_names:
            expr = _find_expression(user_text)
            if expr:
                return [_tool_use_block("calculator", {"expression": expr})]

    if "you summarise conversations" in _system_text(body.get("system")).lower():
        return [{"type": "text", "text": summary_reply(user_text)}]
    if "you consolidate the memories" in _system_text(body.get("system")).lower():
        return [{"type": "text", "text": consolidation_reply(user_text)}]

    n_images, n_bytes = _count_images(messages)
    n_documents, n_pages = _count_documents(messages)
    snippet = user_text[:60]
    documents = f" I can read {n_documents} PDF document(s) ({n_pages} pages)." if n_documents else ""
    return [
        {
            "type": "text",
            "text": f"Stand-in model reply to: {snippet}. I can see {n_images} image(s) "
            f"in this conversation (total bytes {n_bytes}).{documents}",
        }
    ]


# --------------------------------------------------------------------------- state


def _check_config(changes: Any) -> dict:
    """Validate a config change (raise ValueError); returns it."""
    if not isinstance(changes, dict):
        raise ValueError("the config is a JSON object")
    unknown = sorted(set(changes) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")

    def positive_int(name: str, v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, an object of them, or null")

    for name in ("context_window", "max_images"):
        if name not in changes or changes[name] is None:
            continue
        value = changes[name]
        if isinstance(value, dict):
            for model, v in value.items():
                positive_int(f"{name}.{model}", v)
        else:
            positive_int(name, value)
    latency = changes.get("latency_ms")
    for model, v in (latency.items() if isinstance(latency, dict) else [("", latency)] if latency is not None else []):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"latency_ms{'.' + model if model else ''} must be an integer >= 0, an object of them, or null")
    if "clock_offset_seconds" in changes:
        v = changes["clock_offset_seconds"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError("clock_offset_seconds must be a number >= 0")
    return changes


class _State:
    def __init__(self, defaults: dict | None = None) -> None:
        self.lock = threading.Lock()
        self.queue: collections.deque[dict] = collections.deque()
        self.recorded: list[dict] = []
        self.connections: set[socket.socket] = set()
        self.defaults = {"context_window": None, "max_images": None, "clock_offset_seconds": 0, "latency_ms": None}
        self.defaults.update(copy.deepcopy(_check_config(defaults or {})))
        self.config = copy.deepcopy(self.defaults)
        self.cache: dict[str, CacheEntry] = {}
        # the thinking blocks of each response that called tools, by tool_use id (check_loop_thinking)
        self.thinking_sent: dict[str, list[dict]] = {}
        self.release = threading.Event()  # ends a stall_after_first_delta step's stall
        self.stalling = 0  # responses stalled right now

    def script(self, steps: Any) -> int:
        if isinstance(steps, dict):
            steps = [steps]
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise ValueError("a script is a step object or a list of step objects")
        with self.lock:
            self.queue.extend(copy.deepcopy(steps))
            return len(self.queue)

    def next_step(self) -> dict | None:
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def reset(self) -> None:
        with self.lock:
            self.queue.clear()
            self.recorded.clear()
            self.cache.clear()
            self.thinking_sent.clear()
            self.config = copy.deepcopy(self.defaults)
            self.release.clear()

    def configure(self, changes: dict) -> dict:
        _check_config(changes)
        with self.lock:
            for key, value in changes.items():
                if key == "clock_offset_seconds" and value is None:
                    value = 0
                self.config[key] = copy.deepcopy(value)
            return copy.deepcopy(self.config)

    def current_config(self) -> dict:
        with self.lock:
            return copy.deepcopy(self.config)

    def advance_clock(self, seconds: float) -> float:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError("advance_seconds must be a number >= 0")
        with self.lock:
            self.config["clock_offset_seconds"] = self.config.get("clock_offset_seconds", 0) + seconds
            return self.config["clock_offset_seconds"]

    def now(self) -> float:
        """The prompt-cache clock (call with the lock held)."""
        return time.monotonic() + float(self.config.get("clock_offset_seconds") or 0)

    def bill(self, prompt: Prompt, model: str) -> CachePlan:
        """Plan and apply a request's prompt-cache reads and writes, atomically."""
        with self.lock:
            now = self.now()
            plan = plan_cache(prompt, model, self.cache, now)
            apply_cache_plan(plan, self.cache, now)
            return plan

    def sent_thinking(self) -> dict[str, list[dict]]:
        with self.lock:
            return copy.deepcopy(self.thinking_sent)

    def remember_thinking(self, content: list[dict]) -> None:
        thinking = thinking_of(content)
        with self.lock:
            for block in content:
                if block.get("type") == "tool_use" and thinking:
                    self.thinking_sent[block["id"]] = copy.deepcopy(thinking)

    def note(self, entry: dict, key: str, value: Any) -> None:
        with self.lock:
            entry[key] = value

    def stall(self, seconds: float) -> None:
        """Wait until released (``StandinServer.release``), at most ``seconds``."""
        with self.lock:
            self.stalling += 1
        try:
            self.release.wait(seconds)
        finally:
            with self.lock:
                self.stalling -= 1

    def record(self, entry: dict) -> None:
        with self.lock:
            self.recorded.append(entry)

    def requests(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.recorded)


# --------------------------------------------------------------------------- HTTP


# What _Handler._parse returns for a body it has answered with a 400 (a JSON ``null`` is a body).
_REFUSED = object()


class _BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _advance_seconds(body: dict) -> Any:
    """The seconds of a ``POST /_standin/clock`` body, which holds that and nothing else."""
    if set(body) != {"advance_seconds"}:
        raise ValueError('the body is {"advance_seconds": <number >= 0>}')
    return body["advance_seconds"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AnthropicStandin/1.0"
    state: _State  # set on the subclass made per server

    # quiet
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        # Each SSE event is its own small write: without TCP_NODELAY, Nagle's algorithm waits for
        # the client's delayed ACK and every model call takes ~40 ms longer than it should.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.state.lock:
                self.state.connections.discard(self.connection)

    # ---- plumbing

    def _read_body(self, limit: int = MAX_REQUEST_BYTES) -> bytes:
        """The request body; over ``limit`` bytes it is read and dropped, and _BodyTooLarge raised."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                chunk_size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if chunk_size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(chunk_size)
                size += len(data)
                if size <= limit:
                    parts.append(data)
                else:
                    parts.clear()
                self.rfile.readline()
            if size > limit:
                raise _BodyTooLarge(size)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            remaining = length
            while remaining > 0:
                got = self.rfile.read(min(remaining, 1 << 20))
                if not got:
                    break
                remaining -= len(got)
            raise _BodyTooLarge(length)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, request_id: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if request_id:
            self.send_header("request-id", request_id)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, err_type: str, message: str, request_id: str | None = None) -> None:
        self._send_json(status, _error_body(err_type, message), request_id or "req_" + _hex(24))

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _selected_headers(self) -> dict:
        out = {k: self.headers[k] for k in _RECORDED_HEADERS if self.headers.get(k) is not None}
        for k in _SECRET_HEADERS:
            if self.headers.get(k) is not None:
                out[k] = "***"
        return out

    # ---- routes

    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        if path == "/_standin/health":
            self._send_json(200, {"ok": True, "server": SERVER_NAME})
        elif path == "/_standin/requests":
            self._send_json(200, self.state.requests())
        elif path == "/_standin/config":
            self._send_json(200, {"ok": True, "config": self.state.current_config()})
        else:
            self._send_error(404, "not_found_error", f"Not found: {path}")

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        try:
            raw = self._read_body()
        except _BodyTooLarge as exc:
            refusal = Refusal("Request exceeds the maximum allowed number of bytes.", 413, "request_too_large")
            if path == "/v1/messages":
                self.state.record(
                    {"body": None, "size": exc.size, "headers": self._selected_headers(),
                     "response": {"status": refusal.status, "error": refusal.error()}}
                )
            self._send_error(refusal.status, refusal.err_type, refusal.message)
            return
        if path == "/v1/messages":
            self._messages(raw)
        elif path == "/v1/messages/count_tokens":
            body = self._parse(raw)
            if body is _REFUSED:
                return
            try:
                prompt = validate_request(body, self.state.current_config(), check_context_window=False)
            except Refusal as refusal:
                self._send_error(refusal.status, refusal.err_type, refusal.message)
                return
            self._send_json(200, {"input_tokens": prompt.tokens})
        elif path == "/_standin/script":
            self._control(raw, lambda body: {"queued": self.state.script(body)}, require_object=False)
        elif path == "/_standin/config":
            self._control(raw, lambda body: {"config": self.state.configure(body)})
        elif path == "/_standin/clock":
            self._control(raw, lambda body: {"clock_offset_seconds": self.state.advance_clock(_advance_seconds(body))})
        elif path == "/_standin/release":
            self.state.release.set()
            self._send_json(200, {"ok": True})
        elif path == "/_standin/reset":
            self.state.reset()
            self._send_json(200, {"ok": True})
        else:
            self._send_error(404, "not_found_error", f"Not found: {path}")

    def _control(self, raw: bytes, change: Callable[[Any], dict], require_object: bool = True) -> None:
        """A control request: ``change`` the stand-in as the JSON body says and answer ``{"ok": true}``
        with what it returns; a body it refuses (ValueError) is a 400."""
        body = self._parse(raw, require_object)
        if body is _REFUSED:
            return
        try:
            answer = change(body)
        except ValueError as exc:
            self._send_error(400, "invalid_request_error", str(exc))
            return
        self._send_json(200, {"ok": True, **answer})

    def _parse(self, raw: bytes, require_object: bool = True) -> Any:
        """The JSON body, or ``_REFUSED`` once a 400 has been sent for it."""
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._send_error(400, "invalid_request_error", f"Invalid JSON body: {exc}")
            return _REFUSED
        if require_object and not isinstance(body, dict):
            self._send_error(400, "invalid_request_error", "The request body must be a JSON object.")
            return _REFUSED
        return body

    # ---- the Messages API

    def _messages(self, raw: bytes) -> None:
        request_id = "req_" + _hex(24)
        headers = self._selected_headers()
        body: Any = None
        try:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise Refusal(f"Invalid JSON body: {exc}") from None
            if isinstance(body, dict) and "max_tokens" not in body:
                raise Refusal("max_tokens: Field required")
            if isinstance(body, dict) and (not isinstance(body["max_tokens"], int) or isinstance(body["max_tokens"], bool)):
                raise Refusal("max_tokens: Input should be a valid integer")
            prompt = validate_request(body, self.state.current_config())
            check_loop_thinking(body["messages"], self.state.sent_thinking())
        except Refusal as refusal:
            self.state.record(
                {
                    "body": body,
                    "raw": raw[:1000].decode("utf-8", "replace") if body is None else None,
                    "headers": headers,
                    "response": {"status": refusal.status, "error": refusal.error()},
                }
            )
            self._send_error(refusal.status, refusal.err_type, refusal.message, request_id)
            return

        step = self.state.next_step() or {}
        stream = bool(body.get("stream"))
        entry: dict = {"body": body, "headers": headers, "response": None}
        self.state.record(entry)  # the dict is filled in below, under the lock
        latency = _model_limit(self.state.current_config().get("latency_ms"), str(body.get("model") or ""), 0)
        if latency:  # the model's time before its first byte (config ``latency_ms``)
            time.sleep(latency / 1000)

        if "error" in step:
            spec = step["error"] or {}
            status = int(spec.get("status", 500))
            err = {
                "type": spec.get("type", "api_error"),
                "message": spec.get("message", "Scripted stand-in error"),
            }
            self._fill(entry, {"status": status, "error": err})
            self._send_error(status, err["type"], err["message"], request_id)
            return

        if "stream_error_after_chars" in step and not stream:
            err = {"type": "overloaded_error", "message": step.get("message", "Overloaded")}
            self._fill(entry, {"status": 529, "error": err})
            self._send_error(529, err["type"], err["message"], request_id)
            return

        model = str(body.get("model") or DEFAULT_MODEL)
        content = self._content_for(step, body)
        if thinking_mode(body) is not None and "error" not in step:
            content = [*thinking_content(step, body), *content]
            self.state.remember_thinking(content)
        plan = self.state.bill(prompt, model)
        usage = usage_of(prompt, plan, content)
        searches = sum(1 for b in content if b["type"] == "server_tool_use" and b.get("name") == "web_search")
        if searches:  # each search is billed on top of the tokens
            usage["server_tool_use"] = {"web_search_requests": searches}
        usage.update(step.get("usage") or {})
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        message = {
            "id": "msg_" + _hex(24),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or DEFAULT_MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

        if not stream:
            self._fill(entry, {"usage": usage, "content": content, "stop_reason": stop_reason})
            self._send_json(200, message, request_id)
            return

        delay = float(step.get("delay_ms") or 0) / 1000.0
        if "cut_after_chars" in step:  # the connection ends cleanly mid-answer: no message_delta/stop
            text = str(step.get("text", ""))[:int(step["cut_after_chars"])]
            partial = [{"type": "text", "text": text}]
            if step.get("search") and web_search_tool(body) is not None:  # cut after a search ran: billed
                partial = [*web_search_content(str(step["search"]), web_search_tool(body))[:2], *partial]
                usage = {**usage, "server_tool_use": {"web_search_requests": 1}}
            self._fill(entry, {"status": 200, "cut": True, "partial_text": text, "usage": usage})
            self._stream(message, partial, delay, request_id, entry, cut=True)
            return
        if "stream_error_after_chars" in step:
            limit = int(step["stream_error_after_chars"])
            text = str(step.get("text", ""))[:limit]
            err = {"type": "overloaded_error", "message": step.get("message", "Overloaded")}
            self._fill(entry, {"status": 200, "error": err, "partial_text": text, "usage": usage})
            self._stream(message, [{"type": "text", "text": text}], delay, request_id, entry, error=err)
            return

        self._fill(entry, {"usage": usage, "content": content, "stop_reason": stop_reason})
        stall = float(step.get("stall_seconds") or 30) if step.get("stall_after_first_delta") else None
        self._stream(message, content, delay, request_id, entry, stall=stall)

    def _fill(self, entry: dict, response: dict) -> None:
        with self.state.lock:
            entry["response"] = copy.deepcopy(response)

    @staticmethod
    def _content_for(step: dict, body: dict) -> list[dict]:
        if "tool_use" in step:
            spec = step["tool_use"] or {}
            blocks = []
            if step.get("text"):
                blocks.append({"type": "text", "text": str(step["text"])})
            blocks.append(_tool_use_block(spec.get("name", "tool"), spec.get("input") or {}, spec.get("id")))
            return blocks
        if "text" in step:
            return [{"type": "text", "text": str(step["text"])}]
        return default_content(body)

    def _stream(
        self,
        message: dict,
        content: list[dict],
        delay: float,
        request_id: str,
        entry: dict,
        error: dict | None = None,
        cut: bool = False,
        stall: float | None = None,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", request_id)
        if error:
            self.send_header("Connection", "close")
        self.end_headers()

        def send(event: str, data: dict) -> None:
            payload = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def pause() -> None:
            if delay:
                time.sleep(delay)

        first_text = True

        def send_text(index: int, chunk: str) -> None:
            nonlocal first_text
            if first_text:
                self.state.note(entry, "first_text_at", time.monotonic())
            send("content_block_delta",
                 {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}})
            if first_text and stall is not None:
                self.state.stall(stall)
            first_text = False

        self.state.note(entry, "first_text_at", None)
        usage = message["usage"]
        start_message = dict(message, content=[], stop_reason=None, stop_sequence=None)
        start_message["usage"] = dict(usage, output_tokens=1)
        try:
            send("message_start", {"type": "message_start", "message": start_message})
            send("ping", {"type": "ping"})
            for index, block in enumerate(content):
                if block["type"] == "thinking":
                    send("content_block_start", {"type": "content_block_start", "index": index,
                                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                    for chunk in _chunk_text(block["thinking"]):
                        pause()
                        send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "thinking_delta", "thinking": chunk}})
                    send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                 "delta": {"type": "signature_delta", "signature": block["signature"]}})
                elif block["type"] in ("redacted_thinking", "web_search_tool_result"):
                    send("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
                elif block["type"] == "text":
                    send(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": {
                            "type": "text", "text": "", **({"citations": []} if "citations" in block else {})}},
                    )
                    for citation in block.get("citations") or []:  # as the API: each before the text it cites
                        send("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "citations_delta", "citation": citation}})
                    for chunk in _chunk_text(block["text"]):
                        pause()
                        send_text(index, chunk)
                else:
                    start_block = {"type": block["type"], "id": block["id"], "name": block["name"], "input": {}}
                    send(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start_block},
                    )
                    encoded = json.dumps(block["input"], ensure_ascii=False)
                    for chunk in _chunk_json(encoded):
                        pause()
                        send(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": chunk},
                            },
                        )
                last = index == len(content) - 1  # a cut or an error comes after the last block's start
                if error and last:
                    send("error", {"type": "error", "error": error})
                    self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                if cut and last:
                    self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                send("content_block_stop", {"type": "content_block_stop", "index": index})
            send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    # as the real API: the cumulative counts, without the cache_creation breakdown
                    "usage": {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")},
                },
            )
            send("message_stop", {"type": "message_stop"})
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


# --------------------------------------------------------------------------- Python API


class StandinServer:
    """The stand-in server, run in a daemon thread.

    >>> with StandinServer() as server:          # port 0: a free port
    ...     server.script([{"text": "hello"}])
    ...     client = anthropic.Anthropic(api_key="x", base_url=server.url)

    ``config`` (``context_window``, ``max_images``, ``clock_offset_seconds``) sets this server's
    defaults, which ``reset()`` restores; ``configure()`` changes them until the next reset.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", **config: Any) -> None:
        self.host = host
        self.port = port
        self._state = _State(config)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("StandinServer is not started")
        return f"http://{self.host}:{self.port}"

    def _bind(self) -> _Server:
        if self._httpd is None:
            handler = type("StandinHandler", (_Handler,), {"state": self._state})
            self._httpd = _Server((self.host, self.port), handler)
            self.port = self._httpd.server_address[1]
        return self._httpd

    def start(self) -> "StandinServer":
        if self._thread is not None:
            return self
        self._bind()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="anthropic-standin", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI)."""
        self._bind().serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
        httpd.server_close()
        with self._state.lock:
            connections = list(self._state.connections)
        for conn in connections:  # idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def script(self, steps: list[dict] | dict) -> None:
        """Append steps to the queue; each accepted /v1/messages request consumes one."""
        self._state.script(steps)

    def reset(self) -> None:
        """Clear the queue, the recorded requests and the prompt cache; restore the config."""
        self._state.reset()

    def configure(self, **config: Any) -> dict:
        """Change ``context_window`` / ``max_images`` (an int, or ``{model: int, "default": int}``;
        None: the default) or ``clock_offset_seconds`` until the next reset; returns the config.
        Unknown keys or bad values raise ValueError and change nothing."""
        return self._state.configure(config)

    def config(self) -> dict:
        """The current config."""
        return self._state.current_config()

    def advance_clock(self, seconds: float) -> float:
        """Move the prompt-cache clock forward; returns the total offset in seconds."""
        return self._state.advance_clock(seconds)

    def release(self) -> None:
        """End the stall of a ``stall_after_first_delta`` step (now, or as soon as it stalls); until
        the next ``reset()``."""
        self._state.release.set()

    def stalled(self) -> bool:
        """Whether a response is stalled right now (a ``stall_after_first_delta`` step)."""
        with self._state.lock:
            return self._state.stalling > 0

    def requests(self) -> list[dict]:
        """A copy of the recorded /v1/messages requests (refused ones included), in order."""
        return self._state.requests()

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Anthropic Messages API stand-in (NOT the real Claude).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--context-window", type=int, default=None,
                        help=f"every model's context window in tokens (default {DEFAULT_CONTEXT_WINDOW})")
    parser.add_argument("--max-images", type=int, default=None,
                        help=f"the most images a request may hold (default {DEFAULT_MAX_IMAGES})")
    args = parser.parse_args(argv)
    config = {k: v for k, v in (("context_window", args.context_window), ("max_images", args.max_images)) if v is not None}
    try:
        server = StandinServer(port=args.port, host=args.host, **config)
    except ValueError as exc:
        parser.error(str(exc))
    server._bind()
    print(f"Anthropic stand-in server (NOT the real Claude) listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server._httpd is not None:
            server._httpd.server_close()


if __name__ == "__main__":
    main()
