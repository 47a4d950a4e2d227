"""Claude's extended thinking in a stored message: the one reading of its thinking blocks.

An assistant message's row keeps the model's content blocks exactly as the API sent them
(``provider_data.content_blocks`` of its ``message_parts``: agno replays them as they are, so every
thinking block goes back with its signature, redacted ones included, in its place). From them: the
thinking as the app and the export show it (``thinking_out``), and the row's ``reasoning_tokens``
(``reasoning_tokens``: the Messages API bills thinking as output tokens and reports no split, so this
is our estimate from the blocks, about 4 characters a token, never more than the call's output).
"""

from __future__ import annotations

import math
from typing import Any

from chatcore.wire.schemas import ThinkingOut

THINKING_BLOCKS = ("thinking", "redacted_thinking")
CHARS_PER_TOKEN = 4


def thinking_blocks(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """The thinking blocks of a message (its ``message_parts``), in order, as stored."""
    blocks = ((parts.get("provider_data") or {}).get("content_blocks")) or []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") in THINKING_BLOCKS]


def reasoning_tokens(parts: dict[str, Any], output_tokens: int) -> int:
    """The estimated part of ``output_tokens`` a message spent thinking."""
    chars = sum(len(b.get("thinking") or "") if b["type"] == "thinking" else len(b.get("data") or "")
                for b in thinking_blocks(parts))
    return min(output_tokens, math.ceil(chars / CHARS_PER_TOKEN))


def thinking_out(parts: dict[str, Any]) -> list[ThinkingOut]:
    """The thinking as the app shows it: each block's text (the summary the API returns), or
    ``redacted`` for a block the API encrypted (never its data, never a signature)."""
    return [ThinkingOut(text=b.get("thinking"), redacted=False) if b["type"] == "thinking"
            else ThinkingOut(text=None, redacted=True) for b in thinking_blocks(parts)]
