"""An export of everything stored about a user (POST and GET /me/export): its life as a job.

``start_export`` records an export (reusing one still being built, or a ready one made within
``EXPORT_COOLDOWN_SECONDS``); the account function builds
it (``build_export``: the zip of ``chatcore.account.archive``, streamed to S3 as it is written); ``latest_export`` is
what GET /me/export answers; the scheduled function calls ``prune_exports``. Handing the job over
and waiting for it is ``chatcore.account.jobs.request_export``.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from chatcore import db
from chatcore.account import archive
from chatcore.config import get_settings
from chatcore.media import s3
from chatcore.store import exports

log = logging.getLogger(__name__)

# An export being built for longer than this is taken as lost (its job died): a new one is started.
BUILDING_SECONDS = 15 * 60
# Exports deleted per round trip by the scheduled clean-up.
PRUNE_BATCH = 500


def start_export(sub: str) -> tuple[dict[str, Any], bool]:
    """The caller's export being built, else a ready one made less than EXPORT_COOLDOWN_SECONDS ago,
    else a new one; and whether it is new (then its job must be started:
    ``chatcore.account.jobs.request_export``)."""
    with db.connection() as conn:
        with conn.transaction():
            return exports.start_export(conn, sub, building_seconds=BUILDING_SECONDS,
                                        cooldown_seconds=get_settings().export_cooldown_seconds)


def get_export(sub: str, export_id: UUID) -> dict[str, Any] | None:
    with db.connection() as conn:
        return exports.get_export(conn, sub, export_id)


def latest_export(sub: str) -> dict[str, Any] | None:
    """The caller's latest export that still exists (a ready one until it expires)."""
    with db.connection() as conn:
        return exports.latest_export(conn, sub)


def build_export(export_id: UUID) -> dict[str, Any]:
    """Build the export's zip and store it in S3; a summary for the log.

    Does nothing when the export is gone or no longer ``building`` (another run finished it), or its
    account is being deleted. Marks it ``ready`` in one statement, only while it is still
    ``building`` and no deletion of its account has begun; when that updates nothing, the zip just
    uploaded is deleted again (unless another run made the export ready with it). On failure the
    export is marked ``failed`` (the error's class, no content), what may have been uploaded is
    deleted, and the error is raised again."""
    with db.connection() as conn:
        job = exports.export_job(conn, export_id)
    if job is None:
        return {"status": "skipped", "reason": "no such export"}
    if job["status"] != "building":
        return {"status": "skipped", "reason": f"already {job['status']}"}
    if job["deleting"]:
        return {"status": "skipped", "reason": "the account is being deleted"}

    key = s3.export_key(export_id)
    uploaded = False
    try:
        # the zip goes to S3 as it is built (a multipart upload, a part at a time): no copy of it in
        # /tmp, so an export of any size fits the function's default storage; the scratch directory
        # holds only one JSON document at a time
        filename = f"chat-export-{datetime.now(UTC).date().isoformat()}.zip"
        with tempfile.TemporaryDirectory(prefix="export-") as scratch, s3.MultipartWriter(
                key, content_type="application/zip",
                content_disposition=f'attachment; filename="{filename}"') as zipped:
            uploaded = True  # from here on an object may exist, even if the upload fails
            counts = archive.write_archive(zipped, scratch, job)
        size = zipped.size
        with db.connection() as conn:
            done = exports.mark_ready(conn, export_id, key=key, size=size, contents=counts.as_dict(),
                                      ttl_seconds=get_settings().export_ttl_seconds)
            state = None if done else exports.export_state(conn, export_id)
    except BaseException as e:
        _failed(export_id, key, e, uploaded)
        raise
    if not done:
        if state is not None and state["status"] == "ready" and state["key"] == key:
            return {"status": "skipped", "reason": "another run finished it"}
        s3.delete_keys([key])  # the account is being deleted, or the export is gone or failed, meanwhile
        return {"status": "discarded", "reason": "the export is no longer being built"}
    log.info("export ready", extra={"export_id": str(export_id), "size": size, **counts.as_dict()})
    return {"status": "ready", "size": size, **counts.as_dict()}


def _failed(export_id: UUID, key: str, error: BaseException, uploaded: bool) -> None:
    """Mark the export failed and delete what may have been uploaded (best effort: the error that
    brought us here is the one raised)."""
    state = None
    try:
        with db.connection() as conn:
            exports.mark_failed(conn, export_id, error.__class__.__name__)
            state = exports.export_state(conn, export_id)
    except Exception:  # noqa: BLE001 - the database may be what failed; the schedule fails it later
        log.warning("could not mark the export %s failed", export_id, exc_info=True)
    if uploaded and not (state is not None and state["status"] == "ready" and state["key"] == key):
        try:
            s3.delete_keys([key])
        except Exception:  # noqa: BLE001 - the bucket's lifecycle rule removes it after a day
            log.warning("could not delete the partial export %s", key, exc_info=True)
    log.warning("export %s failed (%s)", export_id, error.__class__.__name__)


# ---- the schedule

def prune_exports() -> dict[str, int]:
    """The scheduled clean-up: ready exports past ``expires_at`` are deleted (their zip first, then
    the row); exports ``building`` for longer than ``BUILDING_SECONDS`` are marked failed (their job
    died); failed ones older than a day are deleted. Counts of each. Raises when S3 fails to delete
    an expired or failed export's zip (its row then stays, for the next run)."""
    with db.connection() as conn:
        lost = exports.fail_lost(conn, BUILDING_SECONDS)
    if lost:  # a job that died after its upload may have left a zip no row names as ready
        try:
            s3.delete_keys([s3.export_key(i) for i in lost])
        except Exception:  # noqa: BLE001 - the bucket's lifecycle rule removes it after a day
            log.warning("could not delete the zips of %d lost export(s)", len(lost), exc_info=True)
    expired = _prune(exports.expired_exports, exports.delete_expired)
    failed = _prune(exports.old_failed_exports, exports.delete_failed)
    return {"exports_expired": expired, "exports_lost": len(lost), "exports_failed_deleted": failed}


def _prune(select, delete) -> int:
    deleted = 0
    while True:
        with db.connection() as conn:
            rows = select(conn, PRUNE_BATCH)
        if not rows:
            return deleted
        s3.delete_keys([r["key"] or s3.export_key(r["id"]) for r in rows])  # objects first, then the rows
        with db.connection() as conn:
            deleted += delete(conn, [r["id"] for r in rows])
        if len(rows) < PRUNE_BATCH:
            return deleted
