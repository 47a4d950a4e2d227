"""What a memory may hold, the same fact told from a new one, and the recall: the user's memories as
the model reads them at the start of a session.

A memory is one line of at most ``MEMORY_MAX_CHARS``: whitespace (line breaks included) is folded
to single spaces, so a memory can never pose as another line of the recall. What the model writes
must be words (``words_only``): data (a ``data:`` URL, a long run of base64) is refused, so a photo
is never stored in a memory, its description may be (the user's own edits are bounded by the length
alone, which no photo fits). Two texts are the same fact when their ``fact_key`` is (case, spacing
and punctuation aside).

The recall is a block of text: an opening line, then one line per memory, ``[id] text``, oldest
first, where ``id`` is the last 8 characters of the memory's id (what the model passes to
``update_memory`` and ``forget_memory``; a few tokens instead of a UUID's dozens). Its size is
estimated as the model's input is (4 characters a token, ``chatcore.turns.context``), and the whole
block is held within ``MEMORY_MAX_TOKENS`` and ``MEMORY_MAX_COUNT`` by the writes
(``chatcore.memory.changes``), which consolidate the memories rather than drop one.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from uuid import UUID

from chatcore.errors import InvalidInput

# The estimate of chatcore.turns.context: 4 characters a token.
CHARS_PER_TOKEN = 4
SHORT_ID_CHARS = 8
RECALL_OPENING = (
    "[What you remember about this user from earlier conversations, one memory a line: [id] memory. "
    "Use it when it helps; what the user says now comes first. The ids are for update_memory and forget_memory.]")
# Only when MEMORY_MAX_TOKENS was lowered below what is stored: the next write consolidates them.
RECALL_LEFT_OUT = "[{n} older memory(ies) not shown here: over the memory budget until they are consolidated]"
_DATA = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64|[A-Za-z0-9+/=_-]{120,}", re.IGNORECASE)
_SHORT_ID = re.compile(r"[0-9a-f]{8}")


def clean_text(text: str, max_chars: int, *, words_only: bool = False) -> str:
    """``text`` as a memory: one line, its whitespace folded; InvalidInput (422, field ``text``) when
    it is blank, longer than ``max_chars`` (MEMORY_MAX_CHARS) or holds a NUL, and with
    ``words_only`` (what the model writes) when it looks like data."""
    if "\x00" in text:
        raise InvalidInput("a memory must not contain NUL (U+0000) characters", field="text")
    one_line = " ".join(text.split())
    if not one_line:
        raise InvalidInput("a memory needs some text", field="text")
    if len(one_line) > max_chars:
        raise InvalidInput(f"a memory holds at most {max_chars} characters (MEMORY_MAX_CHARS); this one has "
                           f"{len(one_line)}", field="text")
    if words_only and _DATA.search(one_line):
        raise InvalidInput("a memory holds words, not data: photos are never stored in memories (their "
                           "description may be)", field="text")
    return one_line


def fact_key(text: str) -> str:
    """What tells one fact from another: the words of ``text``, case and punctuation aside."""
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


def short_id(memory_id: UUID | str) -> str:
    """The last 8 characters of a memory's id (UUIDv7: the random part), as the recall shows it."""
    return str(memory_id)[-SHORT_ID_CHARS:]


def parse_ref(ref: str) -> tuple[UUID | None, str | None]:
    """A memory named by the model or the app: (its id, None) for a whole id, (None, short id) for
    the recall's 8 characters; (None, None) for anything else."""
    ref = ref.strip().strip("[]").strip().lower()
    try:
        return UUID(ref), None
    except ValueError:
        pass
    return (None, ref) if _SHORT_ID.fullmatch(ref) else (None, None)


def line(memory_id: UUID | str, text: str) -> str:
    return f"[{short_id(memory_id)}] {text}"


def estimated_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def recall_tokens(texts: Sequence[str]) -> int:
    """The estimated tokens of the recall of memories with these texts (ids are all 8 characters)."""
    if not texts:
        return 0
    chars = len(RECALL_OPENING) + sum(SHORT_ID_CHARS + 4 + len(t) for t in texts)  # "\n[" id "] " text
    return math.ceil(chars / CHARS_PER_TOKEN)


def within_limits(texts: Sequence[str], *, max_tokens: int, max_count: int) -> bool:
    """Whether memories with these texts fit MEMORY_MAX_COUNT and, recalled, MEMORY_MAX_TOKENS."""
    return len(texts) <= max_count and recall_tokens(texts) <= max_tokens


def render(memories: Sequence[tuple[UUID | str, str]], max_tokens: int) -> str:
    """The recall of ``memories`` ((id, text), oldest first): "" when there are none. Only when they
    exceed ``max_tokens`` (the budget was lowered below what is stored) are the oldest left out of
    this rendering, which says so; the memories themselves stay, and the next write consolidates them."""
    if not memories:
        return ""
    lines = [line(memory_id, text) for memory_id, text in memories]
    if recall_tokens([text for _, text in memories]) <= max_tokens:
        return "\n".join([RECALL_OPENING, *lines])
    room = max_tokens * CHARS_PER_TOKEN - len(RECALL_OPENING) - len(RECALL_LEFT_OUT) - 8
    kept: list[str] = []
    for text in reversed(lines):  # the newest first, while they fit
        if room - (len(text) + 1) < 0 and kept:
            break
        room -= len(text) + 1
        kept.append(text)
    kept.reverse()
    left_out = len(lines) - len(kept)
    note = [RECALL_LEFT_OUT.format(n=left_out)] if left_out else []
    return "\n".join([RECALL_OPENING, *note, *kept])
