"""Page cursors: what a page's ``next_cursor`` is made of (the last row's sort keys) as an opaque,
URL-safe token, and reading it back (``Cursor``: the query parameter). A cursor the API did not
return is a 422 naming ``cursor``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query

from chatcore.errors import InvalidInput

# A cursor is what a page's next_cursor was: URL-safe base64 without padding, of at most 200 characters.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
Cursor = Annotated[str | None, Query(max_length=200, pattern=CURSOR_PATTERN, description=(
    "the next_cursor of the previous page, as it was (URL-safe base64 without padding); another "
    "value is 422 invalid-input (field: cursor)"))]


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
