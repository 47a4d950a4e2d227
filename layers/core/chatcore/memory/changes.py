"""Every change to a user's memories, by the model's tools during a turn (``chatcore.turns.memory``)
or by the user (``/me/memories``, ``/me/settings``), each in one short transaction that locks the
user's row first: one user's writes are serialised, and the limits are checked against what is
stored. No network call is made inside one; a consolidation's model call happens between two.

- ``remember`` adds a memory (the model only, and only while the user's switch is on); the same fact
  again changes nothing; one that would take the memories past ``MEMORY_MAX_COUNT`` or (recalled)
  ``MEMORY_MAX_TOKENS`` raises ``NeedsConsolidation`` with what is stored, and the caller
  consolidates: ``replace`` then swaps what it read for the consolidated memories, or nothing if
  any of them changed meanwhile (a deletion by the user is never undone by a consolidation);
- ``update`` and ``forget`` (the model or the user), ``forget_all`` and ``set_enabled`` (the user)
  also move the user's ``memory_version``, so that sessions already under way render their recall
  anew at their next turn: a forgotten memory is not recalled again anywhere.

The user is the caller's (``sub``) or the running turn's (``user_id``), never an argument a model
chose: a memory of someone else is not found (404).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import psycopg
from uuid6 import uuid7

from chatcore import db
from chatcore.config import get_settings
from chatcore.errors import InvalidInput, MemoryExists, NotFound
from chatcore.memory.facts import clean_text, fact_key, parse_ref, recall_tokens, within_limits
from chatcore.store import memories
from chatcore.store.sessions import ensure_user

Action = Literal["saved", "unchanged", "updated", "forgotten", "consolidated"]


@dataclass
class MemoryChange:
    """What a change did: ``memory`` is the row saved, updated or forgotten (for ``consolidated``,
    ``memories`` are the new rows, which replaced ``replaced`` memories, the new fact among them)."""

    action: Action
    memory: dict[str, Any] | None = None
    previous_text: str | None = None
    memories: list[dict[str, Any]] = field(default_factory=list)
    replaced: int = 0


class MemoryOff(Exception):
    """The user has switched memory off: the model's tools write nothing."""


class NeedsConsolidation(Exception):
    """Adding ``text`` would take the memories past the limits: ``stored`` is what is stored (oldest
    first, as read), to be consolidated with it."""

    def __init__(self, stored: list[dict[str, Any]], text: str):
        super().__init__("the memories would outgrow MEMORY_MAX_TOKENS or MEMORY_MAX_COUNT")
        self.stored, self.text = stored, text


def limits() -> dict[str, int]:
    s = get_settings()
    return {"max_tokens": s.memory_max_tokens, "max_count": s.memory_max_count}


def _lock(conn: psycopg.Connection, *, user_id: UUID | None, sub: str | None, by_model: bool) -> UUID:
    """Lock the user's row: its id. NotFound without a user (a memory of no one is no one's);
    MemoryOff when the model writes while the user's switch is off."""
    user = memories.lock_user(conn, user_id=user_id, sub=sub)
    if user is None:
        raise NotFound("no such memory")
    if by_model and not user["memory_enabled"]:
        raise MemoryOff()
    return user["id"]


def _find(conn: psycopg.Connection, user_id: UUID, ref: str | UUID) -> dict[str, Any]:
    memory_id, short = (ref, None) if isinstance(ref, UUID) else parse_ref(ref)
    found = memories.find_memory(conn, user_id, memory_id=memory_id, short=short) if memory_id or short else []
    if len(found) != 1:  # none, or (8 characters shared by two ids) not one
        raise NotFound(f"no such memory: {ref}")
    return found[0]


def remember(user_id: UUID, text: str, *, session_id: UUID, run_id: UUID) -> MemoryChange:
    """The model saves ``text`` as a memory of the turn's user (see the module)."""
    text = clean_text(text, get_settings().memory_max_chars, words_only=True)
    key = fact_key(text)
    with db.connection() as conn, conn.transaction():
        _lock(conn, user_id=user_id, sub=None, by_model=True)
        stored = memories.user_memories(conn, user_id)
        same = next((m for m in stored if m["fact_key"] == key), None)
        if same is not None:
            return MemoryChange("unchanged", same)
        if not within_limits([*(m["text"] for m in stored), text], **limits()):
            raise NeedsConsolidation(stored, text)
        row = memories.insert_memory(conn, memory_id=uuid7(), user_id=user_id, text=text, fact_key=key,
                                     session_id=session_id, run_id=run_id)
    return MemoryChange("saved", row)


class _Changed(Exception):
    """What a consolidation read changed before its result could replace it."""


def replace(user_id: UUID, read: list[dict[str, Any]], texts: list[str], *, session_id: UUID, run_id: UUID,
            also: Callable[[psycopg.Connection], None]) -> MemoryChange | None:
    """A consolidation's result: the memories ``read`` replaced by memories with ``texts`` (checked
    and deduplicated by the caller), in one transaction with ``also`` (the consolidation's priced
    run, which is stored whatever happens). None, with nothing replaced, when any memory read has
    changed or gone since, or the user switched memory off meanwhile."""
    with db.connection() as conn, conn.transaction():
        user = memories.lock_user(conn, user_id=user_id)
        also(conn)
        try:
            with conn.transaction():  # a savepoint: the run's rows stay when this part is undone
                if user is None or not user["memory_enabled"]:
                    raise _Changed()
                if memories.delete_as_read(conn, user_id, read) != len(read):
                    raise _Changed()
                kept = {m["fact_key"] for m in memories.user_memories(conn, user_id)}  # written meanwhile
                rows = []
                for text in texts:
                    key = fact_key(text)
                    if key in kept:
                        continue
                    kept.add(key)
                    rows.append(memories.insert_memory(conn, memory_id=uuid7(), user_id=user_id, text=text,
                                                       fact_key=key, session_id=session_id, run_id=run_id))
        except _Changed:
            return None
    return MemoryChange("consolidated", memories=rows, replaced=len(read))


def update(ref: str | UUID, text: str, *, user_id: UUID | None = None, sub: str | None = None,
           by_model: bool = False) -> MemoryChange:
    """Change a memory's text (the model by the recall's short id, the user by the memory's id).
    NotFound (404) for no such memory of the user; MemoryExists (409) when another memory already
    says it; InvalidInput (422) for a text a memory cannot hold or past MEMORY_MAX_TOKENS."""
    with db.connection() as conn, conn.transaction():
        owner = _lock(conn, user_id=user_id, sub=sub, by_model=by_model)
        target = _find(conn, owner, ref)  # someone else's memory is 404 whatever the text
        text = clean_text(text, get_settings().memory_max_chars, words_only=by_model)
        key = fact_key(text)
        if target["text"] == text:
            return MemoryChange("unchanged", target)
        stored = memories.user_memories(conn, owner)
        other = next((m for m in stored if m["fact_key"] == key and m["id"] != target["id"]), None)
        if other is not None:
            raise MemoryExists(f"memory {other['id']} already says this; delete this one instead")
        texts = [text if m["id"] == target["id"] else m["text"] for m in stored]
        if not within_limits(texts, **limits()):
            raise InvalidInput(f"the memories would need about {recall_tokens(texts)} tokens, past MEMORY_MAX_TOKENS "
                               f"({limits()['max_tokens']}): shorten this one or delete others", field="text")
        row = memories.update_memory(conn, owner, target["id"], text=text, fact_key=key)
        memories.bump_version(conn, owner)
    return MemoryChange("updated", row, previous_text=target["text"])


def forget(ref: str | UUID, *, user_id: UUID | None = None, sub: str | None = None,
           by_model: bool = False) -> MemoryChange:
    """Delete a memory; NotFound (404) for no such memory of the user."""
    with db.connection() as conn, conn.transaction():
        owner = _lock(conn, user_id=user_id, sub=sub, by_model=by_model)
        row = memories.delete_memory(conn, owner, _find(conn, owner, ref)["id"])
        memories.bump_version(conn, owner)
    return MemoryChange("forgotten", row)


def forget_all(sub: str) -> int:
    """Delete every memory of the caller: how many there were."""
    with db.connection() as conn, conn.transaction():
        user = memories.lock_user(conn, sub=sub)
        if user is None:
            return 0
        deleted = memories.delete_all(conn, user["id"])
        memories.bump_version(conn, user["id"])
    return deleted


def is_enabled(sub: str) -> bool:
    """The caller's switch (on for a user never seen: the default)."""
    with db.connection() as conn:
        user = memories.user_of_sub(conn, sub)
    return True if user is None else user["memory_enabled"]


def set_enabled(sub: str, enabled: bool) -> bool:
    """Switch memory on or off for the caller: off, nothing is written or recalled (what is stored
    stays, to see, edit or delete, and is recalled again when it is switched back on)."""
    with db.connection() as conn, conn.transaction():
        user_id = ensure_user(conn, sub)
        memories.lock_user(conn, user_id=user_id)
        return memories.set_enabled(conn, user_id, enabled)
