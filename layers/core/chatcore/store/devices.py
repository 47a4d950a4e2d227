"""The user's phones (``devices``) and the notifications claimed for them (``pushes``): every SQL
statement of push notifications (``chatcore.notify``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from uuid6 import uuid7

DEVICE_COLUMNS = "d.id, d.platform, d.token, d.app_version, d.locale, d.endpoint_arn, d.created_at, d.updated_at"

# The same (platform, token) is the same device: registered again it is updated (and moves to this
# user when another one had it; its endpoint is kept: SNS keys endpoints by token). ``previous_user``
# tells a new device (NULL), the caller's own (the same id), or one moved from another user.
UPSERT_DEVICE = f"""
WITH previous AS (SELECT user_id FROM devices WHERE platform = %(platform)s AND token = %(token)s)
INSERT INTO devices AS d (id, user_id, platform, token, app_version, locale)
VALUES (%(id)s, %(user_id)s, %(platform)s, %(token)s, %(app_version)s, %(locale)s)
ON CONFLICT ON CONSTRAINT devices_one_per_token DO UPDATE
SET user_id = EXCLUDED.user_id, app_version = coalesce(EXCLUDED.app_version, d.app_version),
    locale = coalesce(EXCLUDED.locale, d.locale), updated_at = now()
RETURNING {DEVICE_COLUMNS}, (SELECT user_id FROM previous) AS previous_user
"""

SET_ENDPOINT = "UPDATE devices SET endpoint_arn = %(arn)s WHERE id = %(id)s"

DEVICES_OF_SUB = f"""
SELECT {DEVICE_COLUMNS} FROM devices d JOIN users u ON u.id = d.user_id AND u.sub = %(sub)s ORDER BY d.id
"""

DEVICES_OF_USER = f"SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.user_id = %(user_id)s ORDER BY d.id"

DELETE_OF_SUB = """
DELETE FROM devices d USING users u
WHERE d.id = %(id)s AND d.user_id = u.id AND u.sub = %(sub)s
RETURNING d.endpoint_arn
"""

DELETE_OF_USER = "DELETE FROM devices WHERE user_id = %(user_id)s RETURNING id, endpoint_arn"

# A device whose endpoint the platform disabled: gone (unless it was registered again meanwhile,
# which gave it a fresh endpoint).
DELETE_DISABLED = "DELETE FROM devices WHERE id = %(id)s AND endpoint_arn IS NOT DISTINCT FROM %(arn)s"

PREVIEW_OF_USER = "SELECT push_preview FROM users WHERE id = %(user_id)s"
PREVIEW_OF_SUB = "SELECT push_preview FROM users WHERE sub = %(sub)s"
SET_PREVIEW = "UPDATE users SET push_preview = %(preview)s WHERE id = %(user_id)s RETURNING push_preview"

USER_OF_SESSION = "SELECT user_id FROM sessions WHERE id = %(session_id)s"

# The one claim of a notification: the INSERT that wins sends it. A turn_finished push is claimed
# only while no client read the turn's final event through the events route.
CLAIM = """
INSERT INTO pushes (user_id, kind, key) VALUES (%(user_id)s, %(kind)s, %(key)s)
ON CONFLICT DO NOTHING RETURNING key
"""
CLAIM_UNSEEN = """
INSERT INTO pushes (user_id, kind, key)
SELECT %(user_id)s, 'turn_finished', %(key)s FROM runs WHERE id = %(run_id)s AND final_delivered_at IS NULL
ON CONFLICT DO NOTHING RETURNING key
"""
COUNT_SENT = "UPDATE pushes SET devices = %(devices)s WHERE user_id = %(user_id)s AND kind = %(kind)s AND key = %(key)s"

PUSHES_OF_USER = "SELECT kind, key, devices, created_at FROM pushes WHERE user_id = %(user_id)s ORDER BY created_at, kind, key"

PRUNE_PUSHES = "DELETE FROM pushes WHERE created_at < now() - make_interval(days => %(days)s)"


def upsert_device(conn: psycopg.Connection, *, user_id: UUID, platform: str, token: str,
                  app_version: str | None, locale: str | None) -> dict[str, Any]:
    return conn.execute(UPSERT_DEVICE, {"id": uuid7(), "user_id": user_id, "platform": platform, "token": token,
                                        "app_version": app_version, "locale": locale}).fetchone()


def set_endpoint(conn: psycopg.Connection, device_id: UUID, arn: str | None) -> None:
    conn.execute(SET_ENDPOINT, {"id": device_id, "arn": arn})


def devices_of_sub(conn: psycopg.Connection, sub: str) -> list[dict[str, Any]]:
    return conn.execute(DEVICES_OF_SUB, {"sub": sub}).fetchall()


def devices_of_user(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(DEVICES_OF_USER, {"user_id": user_id}).fetchall()


def delete_of_sub(conn: psycopg.Connection, sub: str, device_id: UUID) -> dict[str, Any] | None:
    """The caller's device deleted (its ``endpoint_arn``), or None (unknown, or someone else's)."""
    return conn.execute(DELETE_OF_SUB, {"sub": sub, "id": device_id}).fetchone()


def delete_of_user(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    """Every device of the user deleted (an account deleted): their ``endpoint_arn``s."""
    return conn.execute(DELETE_OF_USER, {"user_id": user_id}).fetchall()


def delete_disabled(conn: psycopg.Connection, device_id: UUID, arn: str | None) -> int:
    return conn.execute(DELETE_DISABLED, {"id": device_id, "arn": arn}).rowcount


def preview_of_user(conn: psycopg.Connection, user_id: UUID) -> bool:
    row = conn.execute(PREVIEW_OF_USER, {"user_id": user_id}).fetchone()
    return bool(row and row["push_preview"])


def preview_of_sub(conn: psycopg.Connection, sub: str) -> bool:
    row = conn.execute(PREVIEW_OF_SUB, {"sub": sub}).fetchone()
    return bool(row and row["push_preview"])


def set_preview(conn: psycopg.Connection, user_id: UUID, preview: bool) -> bool:
    return conn.execute(SET_PREVIEW, {"user_id": user_id, "preview": preview}).fetchone()["push_preview"]


def user_of_session(conn: psycopg.Connection, session_id: UUID) -> UUID | None:
    row = conn.execute(USER_OF_SESSION, {"session_id": session_id}).fetchone()
    return None if row is None else row["user_id"]


def claim(conn: psycopg.Connection, user_id: UUID, kind: str, key: str) -> bool:
    """Whether this caller won the notification (the first to claim it)."""
    return conn.execute(CLAIM, {"user_id": user_id, "kind": kind, "key": key}).fetchone() is not None


def claim_unseen(conn: psycopg.Connection, user_id: UUID, run_id: UUID) -> bool:
    """Claim the turn_finished push of ``run_id`` unless a client read its final event."""
    return conn.execute(CLAIM_UNSEEN, {"user_id": user_id, "key": str(run_id), "run_id": run_id}).fetchone() is not None


def count_sent(conn: psycopg.Connection, user_id: UUID, kind: str, key: str, devices: int) -> None:
    conn.execute(COUNT_SENT, {"user_id": user_id, "kind": kind, "key": key, "devices": devices})


def pushes_of_user(conn: psycopg.Connection, user_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(PUSHES_OF_USER, {"user_id": user_id}).fetchall()


def prune_pushes(conn: psycopg.Connection, days: int) -> int:
    return conn.execute(PRUNE_PUSHES, {"days": days}).rowcount
