"""The model's input for a turn, built from the stored history under explicit budgets.

Claude refuses a request over 32 MB, with more than 100 images (any image over 2000 px once it holds
more than 20), with an image whose base64 is over 5 MB, or longer than its context window; and every
photo of the history is sent again, as base64, on every model call. So the history is not sent as
it is stored: ``build_context`` takes whole turns, newest first, while they fit

- ``CONTEXT_MAX_TOKENS`` (default 80,000): estimated locally (text at 4 characters a token, a photo
  at 1,600, the most an image costs after the API's own 1568 px / 1.15 MP downscale, plus the agent's
  instructions and tools), then calibrated with the stored usage of the session's last model call,
  which tells the real size of that prompt: when the estimate of that same prompt was lower, every
  estimate is scaled up by the same factor (never down). 80,000 is far below the models' context
  windows (1M) and below the long-context price tiers (input over 200k tokens for Sonnet, 100k for
  Haiku), so a long conversation never pays the higher rate;
- ``CONTEXT_MAX_IMAGES`` (default 20) in one request: older photos become a short text placeholder
  in the model's copy only (the stored rows are unchanged);
- ``CONTEXT_MAX_BYTES`` (default 24 MB) for the encoded request, whatever the history holds;
- ``CONTEXT_MAX_DOCUMENT_PAGES`` (default 100, the Messages API's limit) of PDF pages in one request:
  older documents become a placeholder naming them in the model's copy (newest documents kept
  first). A document's pages cost about ``PAGE_TOKENS`` each (the API bills a page's text and an image
  of it, roughly 1,500-3,000 tokens): they count in the estimate of the request (and its calibration,
  the reservation) on top of CONTEXT_MAX_TOKENS, which bounds the conversation; the page budget bounds
  the documents' share, and the byte budget both (a PDF is sent as base64).

A turn is never split (so neither is a tool_use/tool_result pair, which lives inside one turn).
When turns or photos must be left out, the window starts at an "anchor" turn (about one turn in
four, chosen by its first message's id), so it moves in steps of several turns: between steps each
request starts with the previous one, byte for byte, and the prompt cache reads it. A
new message that alone does not fit is refused before any model call (413 ``context-too-large``).
When the API refused one of the session's last four turns because of what the request held (too
long, too large, too many or too big images), the budgets are halved for each such refusal among
them, so the session recovers on its next turn instead of repeating the error, and does not grow
straight back into it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from agno.models.message import Message

from chatcore.errors import ContextTooLarge

# An image costs at most this after the API's own downscale (1.15 MP / 750 pixels a token).
IMAGE_TOKENS = 1_600
CHARS_PER_TOKEN = 4
# What one message adds beyond its text (role, framing).
MESSAGE_OVERHEAD_TOKENS = 8
# The JSON around a request (model, system, tools, framing), in bytes.
REQUEST_OVERHEAD_BYTES = 64 * 1024
# The calibration factor is kept within this range (a stored usage that is off by more is ignored).
CALIBRATION_RANGE = (1.0, 4.0)
# When turns or photos must be left out, the window starts at an anchor turn (about one in this many),
# so it moves in steps and the request's prefix stays byte-stable, and cached, between the steps.
STEP_TURNS = 4
# A PDF page, as estimated: its text and the image of it Claude reads (billed ~1,500-3,000; the
# calibration scales the estimate up when the API counted more).
PAGE_TOKENS = 2_000
# What the model reads where a document was left out of the request.
DOCUMENT_PLACEHOLDER = ("[earlier document(s) of this message left out: {names}; the conversation holds more "
                        "pages than fit one request]")
# What the model reads where a photo was left out of the request.
PHOTO_PLACEHOLDER = "[{n} earlier photo(s) of this message left out: the conversation holds more than fit one request]"
# Error messages of the Messages API that mean "the request held too much" (the next turn shrinks).
CONTEXT_REFUSALS = ("prompt is too long", "request_too_large", "exceeds the maximum", "too many images",
                    "image exceeds", "image dimensions exceed", "maximum allowed size", "pdf pages")


@dataclass(frozen=True)
class Budgets:
    max_tokens: int
    max_images: int
    max_bytes: int
    max_pages: int = 100

    @classmethod
    def configured(cls, settings: Any) -> Budgets:
        """The budgets of the settings (CONTEXT_MAX_TOKENS, _IMAGES, _BYTES, _DOCUMENT_PAGES)."""
        return cls(settings.context_max_tokens, settings.context_max_images, settings.context_max_bytes,
                   settings.context_max_document_pages)

    def shrunk(self, refusals: int) -> Budgets:
        """Halved for each recent turn the API refused for its size (at least one image, 1,000 tokens);
        the pages are counted exactly, so their budget stays."""
        if refusals <= 0:
            return self
        factor = 2 ** min(refusals, 8)
        return Budgets(max(self.max_tokens // factor, 1_000), max(self.max_images // factor, 1),
                       max(self.max_bytes // factor, 1024 * 1024), self.max_pages)


@dataclass
class Context:
    """The model's copy of the history for one request, and what was left out of it."""

    history: list[Message]
    tokens: int
    images: int
    encoded_bytes: int
    turns_left_out: int = 0
    images_left_out: int = 0
    pages: int = 0
    documents_left_out: int = 0
    calibration: float = 1.0
    budgets: Budgets | None = None
    notes: list[str] = field(default_factory=list)


def instructions_tokens(texts: list[str], tools: int) -> int:
    """The estimate of the system prompt and tool definitions agno sends with every request: its own
    framing, the given texts (description, instructions, members), and each tool's JSON schema."""
    return 500 + math.ceil(sum(len(t) for t in texts) / CHARS_PER_TOKEN) + 300 * tools


def is_context_refusal(error_message: str | None) -> bool:
    """Whether the API refused a request for what it held (so a smaller one would pass)."""
    text = (error_message or "").lower()
    return any(marker in text for marker in CONTEXT_REFUSALS)


def group_turns(history: list[Message]) -> list[list[Message]]:
    """The stored history as turns: each starts with a user message (tool results are role ``tool``)."""
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def _text_chars(message: Message) -> int:
    blocks = (message.provider_data or {}).get("content_blocks") if message.role == "assistant" else None
    if isinstance(blocks, list) and blocks:
        # the model's own blocks, replayed as they came (thinking and its signatures included): what
        # the request holds instead of the text and tool calls
        return len(json.dumps(blocks, default=str))
    chars = 0
    content = message.content
    if isinstance(content, str):
        chars += len(content)
    elif content is not None:
        chars += len(json.dumps(content, default=str))
    if message.tool_calls:
        chars += len(json.dumps(message.tool_calls, default=str))
    return chars


class Sizes:
    """Each message's text characters, measured once: the JSON of the model's replayed blocks and tool
    calls is most of what building a context costs, and one build measures a message several times
    (and a turn builds twice: ``turns.compaction``'s early look, then the request). Valid while the
    messages are unchanged: a build that applies its choices changes them last, after every measure."""

    def __init__(self) -> None:
        self._chars: dict[int, int] = {}
        self._tokens: dict[int, int] = {}
        self._held: list[Message] = []  # the measured messages stay alive, so an id is not reused meanwhile

    def chars(self, message: Message) -> int:
        key = id(message)
        found = self._chars.get(key)
        if found is None:
            found = self._chars[key] = _text_chars(message)
            self._held.append(message)
        return found

    def tokens(self, message: Message) -> int:
        """``message_tokens(message)``."""
        found = self._tokens.get(id(message))
        if found is None:
            found = self._tokens[id(message)] = message_tokens(message, self)
        return found


def _chars(message: Message, sizes: Sizes | None) -> int:
    return _text_chars(message) if sizes is None else sizes.chars(message)


def _image_bytes(image: Any) -> int:
    content = getattr(image, "content", None)
    if isinstance(content, (bytes, bytearray)):
        return len(content)
    ref = getattr(image, "media_reference", None)
    return int(getattr(ref, "size", 0) or 0)


def message_tokens(message: Message, sizes: Sizes | None = None) -> int:
    """The local estimate of what ``message`` adds to a request, in tokens."""
    images = len(message.images or [])
    return MESSAGE_OVERHEAD_TOKENS + math.ceil(_chars(message, sizes) / CHARS_PER_TOKEN) + images * IMAGE_TOKENS


def message_bytes(message: Message, sizes: Sizes | None = None) -> int:
    """What ``message`` adds to the encoded request, in bytes (images and documents as base64)."""
    text = _chars(message, sizes) * 2  # JSON escaping and provider blocks: a generous bound
    return text + sum(_photo_bytes(message)) + sum(_document_bytes(message))


def document_pages(message: Message) -> int:
    """The PDF pages of ``message`` (each counted as PAGE_TOKENS in the estimate of a request)."""
    return sum(_pages(f) for f in message.files or [])


def _pages(file: Any) -> int:
    return int((getattr(file, "metadata", None) or {}).get("pages") or 1)


def _document_bytes(message: Message) -> list[int]:
    """The base64 size of each document of ``message``, oldest first."""
    return [4 * math.ceil(_image_bytes(f) / 3) for f in (message.files or [])]


def _documents_that_fit(turn: list[Message], room_pages: int, room_bytes: int, sizes: Sizes | None = None) -> list[int]:
    """How many documents of each message of ``turn`` to keep (its newest ones): the newest first, while
    their pages and bytes fit (after the turn's text)."""
    keep = [0] * len(turn)
    room_bytes -= sum(message_bytes(m, sizes) - sum(_photo_bytes(m)) - sum(_document_bytes(m)) for m in turn)
    for index in range(len(turn) - 1, -1, -1):
        files = turn[index].files or []
        for file, size in zip(reversed(files), reversed(_document_bytes(turn[index]))):
            if _pages(file) > room_pages or size > room_bytes:
                return keep
            keep[index] += 1
            room_pages -= _pages(file)
            room_bytes -= size
    return keep


def _leave_out_documents(message: Message, keep: int) -> int:
    """Keep the last ``keep`` documents of ``message`` (the model's copy), a placeholder naming the others;
    returns how many were left out."""
    files = list(message.files or [])
    if len(files) <= keep:
        return 0
    dropped = files[:len(files) - keep]
    message.files = files[len(files) - keep:] or None
    names = ", ".join(f"{getattr(f, 'name', None) or 'a PDF'} ({_pages(f)} pages)" for f in dropped)
    note = DOCUMENT_PLACEHOLDER.format(names=names)
    message.content = f"{message.content}\n{note}" if isinstance(message.content, str) and message.content else note
    return len(dropped)


def calibration(history: list[Message], overhead_tokens: int, after: float | None = None,
                sizes: Sizes | None = None) -> float:
    """Real / estimated size of the session's last stored model call's prompt (1.0 without one).

    That call's prompt held the instructions and tools and every message before its own reply; its
    stored usage (uncached + cache read + cache write input tokens) is what Claude counted. A call made
    at or before ``after`` (epoch seconds: when the session's summary was last written) is not used:
    its prompt also held the turns the summary now stands for, which ``history`` no longer has.
    """
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        metrics = getattr(message, "metrics", None)
        if message.role != "assistant" or metrics is None:
            continue
        if after is not None and (message.created_at or 0) <= after:
            return 1.0  # and every call before it
        real = (getattr(metrics, "input_tokens", 0) or 0) + (getattr(metrics, "cache_read_tokens", 0) or 0) \
            + (getattr(metrics, "cache_write_tokens", 0) or 0)
        if real <= 0:
            continue
        estimated = overhead_tokens + sum((message_tokens(m) if sizes is None else sizes.tokens(m))
                                          + (PAGE_TOKENS * document_pages(m) if m.files else 0) for m in history[:index])
        low, high = CALIBRATION_RANGE
        return min(max(real / max(estimated, 1), low), high)
    return 1.0


def _is_anchor(turn: list[Message]) -> bool:
    """About one turn in ``STEP_TURNS`` is an anchor, chosen by its first message's id (stable)."""
    return int(hashlib.sha256(str(turn[0].id).encode()).hexdigest()[:8], 16) % STEP_TURNS == 0


def _photo_bytes(message: Message) -> list[int]:
    """The base64 size of each photo of ``message``, oldest first."""
    return [4 * math.ceil(_image_bytes(i) / 3) for i in (message.images or [])]


def _photos_that_fit(turn: list[Message], room: int, room_bytes: int, sizes: Sizes | None = None) -> list[int]:
    """How many photos of each message of ``turn`` to keep (its newest ones): the newest photos of the
    turn first, while there is room for their number and their bytes (after the turn's text)."""
    keep = [0] * len(turn)
    room_bytes -= sum(message_bytes(m, sizes) - sum(_photo_bytes(m)) for m in turn)
    for index in range(len(turn) - 1, -1, -1):
        for size in reversed(_photo_bytes(turn[index])):
            if room <= 0 or size > room_bytes:
                return keep
            keep[index] += 1
            room -= 1
            room_bytes -= size
    return keep


def _leave_out_images(message: Message, keep: int) -> int:
    """Keep the last ``keep`` images of ``message`` (the model's copy); returns how many were left out."""
    images = list(message.images or [])
    if len(images) <= keep:
        return 0
    dropped = len(images) - keep
    message.images = images[len(images) - keep:] or None
    note = PHOTO_PLACEHOLDER.format(n=dropped)
    message.content = f"{message.content}\n{note}" if isinstance(message.content, str) and message.content else note
    return dropped


def check_fits(new_message: Message, budgets: Budgets, *, overhead_tokens: int) -> None:
    """Raise ContextTooLarge (413) when ``new_message`` with the instructions alone exceeds a budget:
    called before anything of the turn is stored."""
    used_tokens = overhead_tokens + message_tokens(new_message)
    used_bytes = REQUEST_OVERHEAD_BYTES + message_bytes(new_message)
    used_images = len(new_message.images or [])
    used_pages = document_pages(new_message)
    if used_tokens > budgets.max_tokens or used_bytes > budgets.max_bytes or used_images > budgets.max_images \
            or used_pages > budgets.max_pages:
        raise ContextTooLarge(
            f"this message alone needs about {used_tokens:,} tokens, {used_bytes:,} bytes, {used_images} "
            f"image(s) and {used_pages} PDF page(s) with the instructions; a request may hold "
            f"{budgets.max_tokens:,} tokens (CONTEXT_MAX_TOKENS), {budgets.max_bytes:,} bytes "
            f"(CONTEXT_MAX_BYTES), {budgets.max_images} images and {budgets.max_pages} pages "
            "(CONTEXT_MAX_DOCUMENT_PAGES)",
            field="message", estimated_tokens=used_tokens, max_tokens=budgets.max_tokens)


def build_context(history: list[Message], new_message: Message, budgets: Budgets, *,
                  overhead_tokens: int, apply: bool = True, calibrate_after: float | None = None,
                  sizes: Sizes | None = None) -> Context:
    """The history to send with ``new_message`` (see the module): the newest whole turns that fit.
    The messages are the model's copy: photos left out are replaced by a placeholder in them (with
    ``apply=False`` nothing is changed: the decision only). ``sizes``: the measures of an earlier
    build of the same messages (one that did not apply its choices)."""
    sizes = Sizes() if sizes is None else sizes
    factor = calibration(history, overhead_tokens, calibrate_after, sizes)

    def tokens(message: Message) -> int:
        return math.ceil(sizes.tokens(message) * factor)

    used_tokens = math.ceil(overhead_tokens * factor) + tokens(new_message)
    used_bytes = REQUEST_OVERHEAD_BYTES + message_bytes(new_message)
    used_images = len(new_message.images or [])
    used_pages = document_pages(new_message)
    turns = group_turns(history)
    chosen: list[tuple[list[Message], list[int], int, int]] = []  # newest first: turn, photos kept, tokens, bytes
    kept_documents: list[tuple[list[int], int]] = []  # beside it: the turn's documents kept, and their pages
    for turn in reversed(turns):
        if not any(m.images or m.files for m in turn):  # text only (most turns): nothing of it to leave out
            docs = keep = [0] * len(turn)
            turn_pages, turn_tokens, turn_bytes = 0, sum(tokens(m) for m in turn), sum(2 * sizes.chars(m) for m in turn)
        else:
            docs = _documents_that_fit(turn, budgets.max_pages - used_pages, budgets.max_bytes - used_bytes, sizes)
            docs_dropped = [len(m.files or []) - k for m, k in zip(turn, docs)]  # each message's oldest documents
            dropped_doc_bytes = sum(sum(_document_bytes(m)[:d]) for m, d in zip(turn, docs_dropped))
            turn_pages = sum(_pages(f) for m, k in zip(turn, docs) for f in (m.files or [])[len(m.files or []) - k:])
            keep = _photos_that_fit(turn, budgets.max_images - used_images,
                                    budgets.max_bytes - used_bytes + dropped_doc_bytes, sizes)
            dropped = [len(m.images or []) - k for m, k in zip(turn, keep)]  # each message's oldest photos
            turn_bytes = sum(message_bytes(m, sizes) - sum(_photo_bytes(m)[:d])
                             for m, d in zip(turn, dropped)) - dropped_doc_bytes
            turn_tokens = sum(tokens(m) for m in turn) - math.floor(sum(dropped) * IMAGE_TOKENS * factor)
        if used_tokens + turn_tokens > budgets.max_tokens or used_bytes + turn_bytes > budgets.max_bytes:
            break
        used_tokens += turn_tokens
        used_bytes += turn_bytes
        used_images += sum(keep)
        used_pages += turn_pages
        chosen.append((turn, keep, turn_tokens, turn_bytes))
        kept_documents.append((docs, turn_pages))
    chosen.reverse()  # oldest first
    kept_documents.reverse()
    if len(chosen) < len(turns):
        # turns were left out: start at an anchor turn, so the start moves in steps and the request's
        # prefix (and so the prompt cache) stays the same for several turns
        first = next((i for i, (turn, *_) in enumerate(chosen) if _is_anchor(turn)), 0)
        for turn, keep, turn_tokens, turn_bytes in chosen[:first]:
            used_tokens, used_bytes, used_images = used_tokens - turn_tokens, used_bytes - turn_bytes, used_images - sum(keep)
        used_pages -= sum(pages for _, pages in kept_documents[:first])
        chosen, kept_documents = chosen[first:], kept_documents[first:]
    with_photos = [i for i, (turn, keep, *_) in enumerate(chosen) if any(m.images for m in turn)]
    if with_photos and any(sum(keep) < sum(len(m.images or []) for m in turn) for turn, keep, *_ in chosen):
        # photos were left out: keep photos from an anchor turn on only, for the same reason
        oldest_kept = next((i for i in with_photos if sum(chosen[i][1])), len(chosen))
        anchor = next((i for i in range(oldest_kept, len(chosen)) if _is_anchor(chosen[i][0])), oldest_kept)
        for i in range(oldest_kept, anchor):
            turn, keep, turn_tokens, turn_bytes = chosen[i]
            used_images -= sum(keep)
            chosen[i] = (turn, [0] * len(keep), turn_tokens, turn_bytes)
    images_left_out = documents_left_out = 0
    for (turn, keep, *_), (docs, _) in zip(chosen, kept_documents):
        for message, n, d in zip(turn, keep, docs):
            images_left_out += _leave_out_images(message, n) if apply else len(message.images or []) - n
            documents_left_out += _leave_out_documents(message, d) if apply else len(message.files or []) - d
    kept = [turn for turn, *_ in chosen]
    left_out = len(turns) - len(kept)
    page_tokens = math.ceil(used_pages * PAGE_TOKENS * factor)  # on top of the conversation's budget
    return Context(history=[m for turn in kept for m in turn], tokens=used_tokens + page_tokens, images=used_images,
                   encoded_bytes=used_bytes, turns_left_out=left_out, images_left_out=images_left_out,
                   pages=used_pages, documents_left_out=documents_left_out, calibration=factor, budgets=budgets)
