"""What the assistant remembers about the caller: GET /me/memories (newest first), PATCH and DELETE
/me/memories/{id}, DELETE /me/memories (forget everything). Someone else's memory is 404. The
changes are ``chatcore.memory.changes``'; an edit or a deletion reaches sessions already under way
at their next turn."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from chatcore.memory import changes
from chatcore.store import memories
from chatcore.web import cursors
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.openapi import documented_problem
from chatcore.wire.schemas import EditMemory, MemoryOut, MemoryPage, PageSize

router = APIRouter(tags=["memories"])


def memory_out(row: dict[str, Any]) -> MemoryOut:
    return MemoryOut(id=row["id"], text=row["text"], session_id=row["session_id"], run_id=row["run_id"],
                     created_at=row["created_at"], updated_at=row["updated_at"])


@router.get("/me/memories", response_model=MemoryPage, responses=PROBLEM_RESPONSES)
def list_memories(
    sub: Caller,
    conn: Db,
    limit: Annotated[PageSize, Query()] = 20,
    cursor: cursors.Cursor = None,
) -> MemoryPage:
    """What the assistant remembers about the caller, newest first (whatever the memory switch says:
    with memory off, what is stored is still listed)."""
    (before,) = cursors.decode(cursor, UUID) or (None,)
    rows = memories.page_of_sub(conn, sub, before=before, limit=limit + 1)
    next_cursor = cursors.encode(rows[limit - 1]["id"]) if len(rows) > limit else None
    return MemoryPage(items=[memory_out(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.patch("/me/memories/{memory_id}", response_model=MemoryOut, responses={
    **PROBLEM_RESPONSES, 409: documented_problem("another memory of the caller already says this (memory-exists)")})
def edit_memory(memory_id: UUID, body: EditMemory, sub: Caller) -> MemoryOut:
    """Correct what the assistant remembers: the memory's new text. Sessions already under way recall
    the new text from their next turn."""
    return memory_out(changes.update(memory_id, body.text, sub=sub).memory)


@router.delete("/me/memories/{memory_id}", status_code=204, responses=PROBLEM_RESPONSES)
def delete_memory(memory_id: UUID, sub: Caller) -> Response:
    """Forget one memory (the app's "Undo" of a MemoryUpdated event that saved it). It is no longer
    recalled anywhere, sessions already under way included (from their next turn)."""
    changes.forget(memory_id, sub=sub)
    return Response(status_code=204)


@router.delete("/me/memories", status_code=204, responses=PROBLEM_RESPONSES)
def delete_memories(sub: Caller) -> Response:
    """Forget everything the assistant remembers about the caller (the switch stays as it is)."""
    changes.forget_all(sub)
    return Response(status_code=204)
