"""The user's phones: registered (POST /me/devices), listed, deleted. A device's SNS endpoint is made
when it is registered, with no transaction open (SNS unreachable then: it is made at its first push)."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from chatcore import db
from chatcore.errors import NotFound
from chatcore.notify import sns
from chatcore.store import devices as device_rows
from chatcore.store.sessions import ensure_user

log = logging.getLogger(__name__)


def register(sub: str, *, platform: str, token: str, app_version: str | None,
             locale: str | None) -> tuple[dict[str, Any], bool]:
    """The caller's device for ``token`` (the same token again: the same device, updated; a token of
    another user's device moves to the caller); and whether it is new to the caller (201) or not (200)."""
    with db.connection() as conn, conn.transaction():
        user_id = ensure_user(conn, sub)
        row = device_rows.upsert_device(conn, user_id=user_id, platform=platform, token=token,
                                        app_version=app_version, locale=locale)
    created = row["previous_user"] != user_id
    if row["previous_user"] is not None and created:
        log.info("device %s moved to another user", row["id"])
    if row["endpoint_arn"] is None and sns.available():
        try:
            arn = sns.create_endpoint(platform, token)
        except Exception as e:  # noqa: BLE001 - stored anyway; its endpoint is made at its first push
            log.warning("could not create the SNS endpoint of device %s: %s: %s", row["id"], e.__class__.__name__, e)
            arn = None
        if arn is not None:
            with db.connection() as conn:
                device_rows.set_endpoint(conn, row["id"], arn)
            row = {**row, "endpoint_arn": arn}
    return row, created


def list_devices(sub: str) -> list[dict[str, Any]]:
    with db.connection() as conn:
        return device_rows.devices_of_sub(conn, sub)


def delete(sub: str, device_id: UUID) -> None:
    """Delete the caller's device and its endpoint; NotFound for an unknown or someone else's."""
    with db.connection() as conn:
        row = device_rows.delete_of_sub(conn, sub, device_id)
    if row is None:
        raise NotFound("no such device")
    if row["endpoint_arn"]:
        sns.delete_endpoint(row["endpoint_arn"])


def forget_endpoints(rows: list[dict[str, Any]]) -> None:
    """Delete the endpoints of devices that are gone (an account deleted); best effort."""
    for row in rows:
        if row.get("endpoint_arn"):
            sns.delete_endpoint(row["endpoint_arn"])
