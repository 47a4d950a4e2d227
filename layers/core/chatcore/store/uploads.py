"""Uploads (POST /uploads): the row that binds a photo sent straight to S3 to its user, until a turn
uses it. Every read is scoped by the caller's ``sub``: someone else's upload is simply not found."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from chatcore.store.sessions import ensure_user

INSERT_UPLOAD = """
INSERT INTO uploads (id, user_id, key, mime_type, size, expires_at)
VALUES (%(id)s, %(user_id)s, %(key)s, %(mime_type)s, %(size)s, now() + make_interval(secs => %(ttl_seconds)s))
RETURNING id, key, mime_type, size, created_at, expires_at
"""

# expired is decided by the database's clock, the one that set expires_at
FIND_UPLOAD = """
SELECT up.id, up.key, up.mime_type, up.size, up.created_at, up.expires_at, up.consumed_at, up.consumed_run_id,
       up.expires_at <= now() AS expired
FROM uploads up JOIN users u ON u.id = up.user_id
WHERE u.sub = %(sub)s AND up.id = %(upload_id)s
"""

# Only uploads no turn has used yet: the keys returned are the originals this turn may delete.
MARK_CONSUMED = """
UPDATE uploads SET consumed_at = now(), consumed_run_id = %(run_id)s
WHERE id = ANY(%(upload_ids)s) AND consumed_at IS NULL
RETURNING id, key
"""


# Upload rows past their use (the bucket's lifecycle has deleted their objects by then); a used one
# is kept as long, so a late retry of its turn is still recognised.
PRUNE_UPLOADS = "DELETE FROM uploads WHERE expires_at < now() - make_interval(days => %(days)s)"


def create_upload(conn: psycopg.Connection, sub: str, *, upload_id: UUID, key: str, mime_type: str, size: int,
                  ttl_seconds: int) -> dict[str, Any]:
    """Record an upload of the user with ``sub`` (created the first time it is seen)."""
    with conn.transaction():
        user_id = ensure_user(conn, sub)
        return conn.execute(INSERT_UPLOAD, {"id": upload_id, "user_id": user_id, "key": key,
                                            "mime_type": mime_type, "size": size,
                                            "ttl_seconds": ttl_seconds}).fetchone()


def find_upload(conn: psycopg.Connection, sub: str, upload_id: UUID) -> dict[str, Any] | None:
    """The caller's upload (with ``expired``), or None when it is unknown or someone else's."""
    return conn.execute(FIND_UPLOAD, {"sub": sub, "upload_id": upload_id}).fetchone()


def mark_consumed(conn: psycopg.Connection, upload_ids: list[UUID], run_id: UUID | None) -> list[dict[str, Any]]:
    """Mark uploads used by the turn ``run_id``, in one statement; the rows it marked (id, key)."""
    return conn.execute(MARK_CONSUMED, {"upload_ids": list(upload_ids), "run_id": run_id}).fetchall()


def prune_uploads(conn: psycopg.Connection, days: int = 7) -> int:
    """Delete the rows of uploads expired more than ``days`` ago; how many were deleted."""
    return conn.execute(PRUNE_UPLOADS, {"days": days}).rowcount
