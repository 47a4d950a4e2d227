"""Page cursors: what a page's ``next_cursor`` is made of (the last row's sort keys) as an opaque,
URL-safe token, and reading it back. A cursor the API did not return is a 422 naming ``cursor``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from chatcore.errors import InvalidInput

# A cursor is unpadded URL-safe base64 (what ``encode`` writes), at most this long.
CURSOR_MAX_LENGTH = 200


def encode(*keys: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([str(k) for k in keys]).encode()).decode().rstrip("=")


def decode(cursor: str | None, *types: Callable[[str], Any]) -> list[Any] | None:
    """The keys of ``cursor``, each read by its type (``UUID``, ``datetime.fromisoformat``); None
    when there is no cursor (the first page)."""
    if cursor is None:
        return None
    try:
        keys = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(keys, list) or len(keys) != len(types) or not all(isinstance(k, str) for k in keys):
            raise ValueError
        return [read(key) for read, key in zip(types, keys)]
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidInput("the cursor is not one this API returned", field="cursor") from e
