"""A message as the app renders it: the one home of that shape.

A stored message (a row of the messages table, ``chat_events``, as
``chatcore.store.sessions.list_messages`` reads it: with its run's status and parent) becomes a ``MessageOut``: its text, tool calls, tool result, who spoke, its own
model call's tokens and cost, its images and its PDF documents. ``GET /sessions/{id}/messages`` sends
it with each image and document as a short-lived presigned URL (``app_message``); an account's export
(``chatcore.account.export``) writes the same message with each naming its file in the zip instead
(``exported_message``).

An image is one of the session's S3 objects (``stored_images``): a large one by the reference its
row keeps, a small one kept inline in the row by the content key the turn stored it under too (a
read never writes to S3). A document is always an object, named by its row's reference (with the
name the app gave it and its page count). A key that is not under the session's prefix is never
signed nor exported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from chatcore.media import s3
from chatcore.media.images import sniff_image_type
from chatcore.wire.schemas import DocumentOut, ImageOut, MessageOut, MessageUsage, Money, ToolCallOut, ToolResultOut
from chatcore.wire.citations import citations_out
from chatcore.wire.thinking import thinking_out


@dataclass(frozen=True)
class StoredMedia:
    """An image or a document of a message: its S3 object (``key``, under the session's prefix) and,
    when the row keeps it inline (small images), its bytes (``content``, the same as the object's);
    a document's name and pages."""

    id: str | None
    mime_type: str | None
    size: int | None
    key: str
    content: bytes | None = None
    name: str | None = None
    pages: int | None = None


def text(content: Any) -> str | None:
    """A message's text: its content as stored, or its JSON when it is not a string."""
    if content is None or isinstance(content, str):
        return content
    return json.dumps(content)


def stored_images(parts: dict, session_id: UUID) -> list[StoredMedia]:
    """The images of a message (its ``message_parts``) that are objects of the session, in order."""
    out = []
    for image in parts.get("images") or []:
        ref = image.get("media_reference") or {}
        key, content = s3.stored_image_key(image, session_id)
        size = ref.get("size")
        mime = image.get("mime_type") or ref.get("mime_type")
        if content is not None:  # a small image kept inline in the row (and in S3 under its content key)
            mime = sniff_image_type(content) or mime or "application/octet-stream"
            size = len(content)
        if key is None or not key.startswith(s3.session_prefix(session_id)):
            continue  # not an object of this session: never sign or export it
        out.append(StoredMedia(id=image.get("id"), mime_type=mime, size=size, key=key, content=content))
    return out


def stored_documents(parts: dict, session_id: UUID) -> list[StoredMedia]:
    """The documents (PDFs) of a message (its ``message_parts``) that are objects of the session, in order."""
    out = []
    for file in parts.get("files") or []:
        ref = file.get("media_reference") or {}
        key = ref.get("storage_key")
        if key is None or not key.startswith(s3.session_prefix(session_id)):
            continue  # not an object of this session: never sign or export it
        out.append(StoredMedia(id=file.get("id"), mime_type=file.get("mime_type") or ref.get("mime_type"),
                               size=ref.get("size") or file.get("size"), key=key, name=file.get("name"),
                               pages=(file.get("metadata") or {}).get("pages")))
    return out


def message_out(row: dict, images: list[ImageOut], *, documents: list[DocumentOut] | None = None,
                thinking: bool = False) -> MessageOut:
    """The message of ``row`` with the given images and documents (and its thinking, with ``thinking``)."""
    parts = row["message_parts"]
    tool_calls = [ToolCallOut(id=c.get("id"), name=(c.get("function") or {}).get("name"),
                              arguments=(c.get("function") or {}).get("arguments"))
                  for c in parts.get("tool_calls") or []]
    tool_result = None
    if row["role"] == "tool":
        tool_result = ToolResultOut(call_id=parts.get("tool_call_id"), name=parts.get("tool_name"),
                                    error=bool(parts.get("tool_call_error")))
    return MessageOut(
        id=row["id"], run_id=row["run_id"], parent_run_id=row["parent_run_id"], run_status=row["run_status"],
        role=row["role"], agent_name=row["agent_name"], member=row["parent_run_id"] is not None,
        text=text(parts.get("content")), tool_calls=tool_calls, tool_result=tool_result,
        images=images, documents=documents or [], model_id=row["model_id"],
        usage=MessageUsage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                           cache_read_tokens=row["cache_read_tokens"], cache_write_tokens=row["cache_write_tokens"],
                           reasoning_tokens=row.get("reasoning_tokens") or 0),
        cost=Money(usd=row["cost_usd"], zar=row["cost_in_rands"]), created_at=row["created_at"],
        thinking=thinking_out(parts) if thinking and row["role"] == "assistant" else None,
        citations=citations_out(parts) if row["role"] == "assistant" else [],
    )


def app_message(row: dict, session_id: UUID, expires_in: int, *, thinking: bool = False) -> MessageOut:
    """The message as GET /sessions/{id}/messages sends it: each image a presigned URL (signed
    locally, no S3 call), never base64; its thinking only when asked (``?include=thinking``)."""
    images = [ImageOut(id=i.id, mime_type=i.mime_type, size=i.size, url=s3.presigned_get(i.key), expires_in=expires_in)
              for i in stored_images(row["message_parts"], session_id)]
    documents = [DocumentOut(id=d.id, name=d.name, mime_type=d.mime_type, pages=d.pages, size=d.size,
                             url=s3.presigned_get(d.key), expires_in=expires_in)
                 for d in stored_documents(row["message_parts"], session_id)]
    return message_out(row, images, documents=documents, thinking=thinking)


def exported_message(row: dict, session_id: UUID, file_of: Callable[[StoredMedia], str | None]) -> dict[str, Any]:
    """The message as an export writes it (JSON-ready): the app's shape, but each image is
    ``{"id", "mime_type", "size", "file"}`` and each document ``{"id", "name", "mime_type", "pages",
    "size", "file"}``, ``file`` its path in the zip (``file_of``; None when its object is missing)."""
    out = message_out(row, [], thinking=True).model_dump(mode="json")
    out["images"] = [{"id": i.id, "mime_type": i.mime_type, "size": i.size, "file": file_of(i)}
                     for i in stored_images(row["message_parts"], session_id)]
    out["documents"] = [{"id": d.id, "name": d.name, "mime_type": d.mime_type, "pages": d.pages, "size": d.size,
                         "file": file_of(d)} for d in stored_documents(row["message_parts"], session_id)]
    return out
