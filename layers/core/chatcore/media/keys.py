"""The one S3 key rule for a session's images: ``{MEDIA_PREFIX}{session_id}-{sha256[:32]}{ext}``.

Content-addressed, so the same photo twice in a session is one object and a retried upload
overwrites nothing new; every object of a session shares the prefix ``{MEDIA_PREFIX}{session_id}-``,
which is how deleting a session finds them and how a presigned URL is refused for a key that is
not the session's.

An upload's original (POST /uploads) waits under ``{MEDIA_PREFIX}pending/uploads/{upload_id}``: the
bucket's lifecycle rule expires what is under ``pending/``, and a session id never starts with it.

A turn spooled while the database was unreachable (``chatcore.spool``) keeps its record under its
session's prefix, ``{MEDIA_PREFIX}{session_id}-spool-{run_id}.json``, until it is stored: deleting the
session deletes it too.

An account's export (POST /me/export) is ``{MEDIA_PREFIX}exports/{export_id}.zip``: its owner is its
row (``exports``), and the lifecycle rule expires what is under ``exports/`` after a day.
"""

from __future__ import annotations

import hashlib
import mimetypes
from uuid import UUID


def session_prefix(prefix: str, session_id: UUID | str) -> str:
    return f"{prefix}{session_id}-"


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def media_key(prefix: str, session_id: UUID | str, content: bytes, mime_type: str) -> str:
    """The key of an image of a session."""
    ext = mimetypes.guess_extension(mime_type) or ""
    return f"{session_prefix(prefix, session_id)}{content_hash(content)[:32]}{ext}"


def upload_key(prefix: str, upload_id: UUID | str) -> str:
    """The key of an upload's original, until a turn uses it (its owner is its row, not its key)."""
    return f"{prefix}pending/uploads/{upload_id}"


def export_key(prefix: str, export_id: UUID | str) -> str:
    """The key of an account's export (a zip)."""
    return f"{prefix}exports/{export_id}.zip"


def spool_key(prefix: str, session_id: UUID | str, run_id: UUID | str) -> str:
    """The key of a spooled turn's record (``chatcore.spool``), under its session's prefix."""
    return f"{session_prefix(prefix, session_id)}spool-{run_id}.json"


def is_spool_key(key: str) -> bool:
    """Whether ``key`` is a spooled turn's record (not a photo)."""
    return "-spool-" in key and key.endswith(".json")
