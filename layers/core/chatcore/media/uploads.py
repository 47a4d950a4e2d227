"""Big photos and PDFs straight to S3: a phone asks for an upload (``presign``: a presigned S3 POST for
one key under the pending prefix), sends the file to S3 itself, then names the upload in a turn. The
turn reads it (``read_upload``), normalises it like any photo (``chatcore.media.photos``) and stores
the normalised copy; or (``read_document_upload``) checks it as a PDF (``chatcore.media.documents``)
and stores it as it is; the original is then marked used and deleted (``discard_originals``).

The database row binds an upload to its user (the key does not), says when it expires and which turn
used it. Refusals come before anything is stored and before any model call: someone else's or an
unknown upload 404, expired 410, used 409 (with the run that used it), never sent 422, too big 413,
not an image, or not of the type the upload declared, 422. Unused originals expire through the bucket's lifecycle rule on ``pending/``.
No S3 call is made while a database transaction is open.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from uuid6 import uuid7

from chatcore import db
from chatcore.config import get_settings
from chatcore.errors import (
    InvalidDocument, InvalidImage, PayloadTooLarge, ProblemError, StorageUnavailable, UploadExpired, UploadNotFound, UploadNotReceived,
    UploadUsed,
)
from chatcore.media import keys, s3
from chatcore.media.documents import PDF_MIME, DocumentUpload, clean_name, count_pages
from chatcore.media.images import ImageUpload, same_type, sniff_image_type
from chatcore.media.photos import Limits, PixelBudget, header_size, normalise
from chatcore.store import uploads as upload_rows

log = logging.getLogger(__name__)


def check_size(size: int, max_bytes: int) -> None:
    """413 up front for a declared size over the limit (S3 enforces it again on the POST)."""
    if size > max_bytes:
        raise PayloadTooLarge(f"an upload is at most {max_bytes} bytes; this one says {size}", field="size")


def max_upload_bytes(mime_type: str) -> int:
    """The largest upload of ``mime_type``: DOCUMENT_MAX_BYTES for a PDF, UPLOAD_MAX_BYTES for a photo."""
    s = get_settings()
    return s.document_max_bytes if mime_type == PDF_MIME else s.upload_max_bytes


def presign(sub: str, mime_type: str, size: int) -> dict[str, Any]:
    """A new upload of the caller: ``upload_id``, and the presigned POST (``url``, ``fields``,
    ``expires_in``) that accepts one file of type ``mime_type`` and 1..UPLOAD_MAX_BYTES bytes."""
    s = get_settings()
    max_bytes = max_upload_bytes(mime_type)
    check_size(size, max_bytes)
    upload_id = uuid7()
    key = keys.upload_key(s.media_prefix, upload_id)
    try:  # signed locally, no network call
        post = s3.client().generate_presigned_post(
            Bucket=s.media_bucket, Key=key, Fields={"Content-Type": mime_type},
            # the bound is the limit, not the declared size: a client that misreports by a few bytes
            # still succeeds, and the turn checks the object's real size again
            Conditions=[{"Content-Type": mime_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=s.upload_url_seconds)
    except Exception as e:  # noqa: BLE001 - no credentials or configuration: retryable, nothing recorded
        log.exception("could not sign an upload")
        raise StorageUnavailable(f"could not prepare the upload ({e.__class__.__name__}); try again") from e
    with db.connection() as conn:
        upload_rows.create_upload(conn, sub, upload_id=upload_id, key=key, mime_type=mime_type, size=size,
                                  ttl_seconds=s.upload_ttl_seconds)
    return {"upload_id": upload_id, "url": post["url"], "fields": post["fields"], "expires_in": s.upload_url_seconds}


def read_upload(sub: str, upload_id: UUID, *, index: int, budget: PixelBudget | None = None) -> ImageUpload:
    """The caller's upload ``upload_id`` (``images[index]`` of a turn), read from S3 and normalised;
    raises the upload's problem (see the module). CPU- and network-bound: a server calls it in a thread."""
    where, field = f"images[{index}]", f"images[{index}].upload_id"
    row, content = _claim(sub, upload_id, where=where, field=field, max_bytes=get_settings().upload_max_bytes)
    _check_image_type(row, content, where=where, field=field)
    try:
        return normalise(content, where=where, limits=Limits.configured(), budget=budget).upload
    except InvalidImage as e:
        e.extra["field"] = field  # the upload, not a base64 ``data`` field
        raise


def _check_image_type(row: dict, content: bytes, *, where: str, field: str) -> None:
    """422 when the upload's bytes (its header is enough) are not an image we take, or not of the type
    its row declares (as an inline photo's mime_type is checked)."""
    actual = sniff_image_type(content)
    if actual is None:
        raise InvalidImage(f"{where} is not a PNG, JPEG, GIF, WebP, HEIC or AVIF image", field=field)
    if not same_type(row["mime_type"], actual):
        raise InvalidImage(f"{where} is {actual} but the upload's mime_type says {row['mime_type']}", field=field)


def read_document_upload(sub: str, upload_id: UUID, name: str | None, *, index: int) -> DocumentUpload:
    """The caller's upload ``upload_id`` (``documents[index]`` of a turn), read from S3 and checked as a
    PDF (``chatcore.media.documents``); raises the upload's problem. A server calls it in a thread."""
    where, field = f"documents[{index}]", f"documents[{index}].upload_id"
    s = get_settings()
    row, content = _claim(sub, upload_id, where=where, field=field, max_bytes=s.document_max_bytes)
    if row["mime_type"] != PDF_MIME:
        raise InvalidDocument(f"{where}: this upload was declared {row['mime_type']}, not {PDF_MIME}", field=field,
                              reason="not-a-pdf")
    pages = count_pages(content, where=where, field=field, max_pages=s.document_max_pages)
    return DocumentUpload(content=content, pages=pages, name=clean_name(name))


# What an estimate reads of a photo upload (``read_upload_size``): its first bytes, where every format
# we take says its size (PNG, GIF, WebP, HEIC and AVIF at their start; a JPEG after its EXIF segment,
# at most 64 KiB, and any other application segment before its frame header).
HEADER_BYTES = 256 * 1024


def read_upload_size(sub: str, upload_id: UUID, *, index: int) -> tuple[int, int] | None:
    """The pixel size of the caller's photo upload ``upload_id`` (``images[index]``) from its header
    alone: one ranged GET of its first HEADER_BYTES, nothing decoded (a turn's estimate needs no
    more); raises the upload's problems as ``read_upload`` does (404, 409 used, 410, 422 never sent,
    not an image or not of its declared type; its size limits are the turn's to check). None when the
    header does not tell (the caller reads the upload whole)."""
    where, field = f"images[{index}]", f"images[{index}].upload_id"
    row = _usable(sub, upload_id, where=where, field=field)
    content = _read_original(row["key"], where=where, field=field, max_bytes=HEADER_BYTES, first_bytes=HEADER_BYTES)
    _check_image_type(row, content, where=where, field=field)
    return header_size(content)


def _claim(sub: str, upload_id: UUID, *, where: str, field: str, max_bytes: int) -> tuple[dict, bytes]:
    """The row of the caller's usable upload ``upload_id`` and its file's bytes (at most ``max_bytes``)."""
    row = _usable(sub, upload_id, where=where, field=field)
    return row, _read_original(row["key"], where=where, field=field, max_bytes=max_bytes)


def _usable(sub: str, upload_id: UUID, *, where: str, field: str) -> dict:
    """The row of the caller's upload ``upload_id``; its problem when it cannot be used."""
    with db.connection() as conn:  # autocommit: no transaction is held during the S3 calls after it
        row = upload_rows.find_upload(conn, sub, upload_id)
    if row is None:
        raise UploadNotFound(f"{where}: no such upload", field=field)
    if row["consumed_at"] is not None:
        run_id = str(row["consumed_run_id"]) if row["consumed_run_id"] is not None else None
        raise UploadUsed(f"{where}: this upload was already sent with a turn; upload the file again",
                         run_id=run_id, field=field)
    if row["expired"]:
        raise UploadExpired(f"{where}: this upload expired at {row['expires_at'].isoformat()}; upload the file again",
                            field=field)
    return row


def _stored(key: str) -> bool:
    try:
        return s3.exists(key)
    except Exception:  # noqa: BLE001 - cannot tell: the caller's storage error stands
        return True


def _read_original(key: str, *, where: str, field: str, max_bytes: int, first_bytes: int | None = None) -> bytes:
    """The upload's file (at most ``max_bytes``), or its ``first_bytes`` only (a ranged GET)."""
    from botocore.exceptions import ClientError

    s = get_settings()
    ranged = {} if first_bytes is None else {"Range": f"bytes=0-{first_bytes - 1}"}
    try:
        obj = s3.client().get_object(Bucket=s.media_bucket, Key=key, **ranged)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        # without a bucket-wide ListBucket, S3 answers a missing object with 403: a list tells which
        if code in ("NoSuchKey", "404", "NotFound") or (code in ("AccessDenied", "403") and not _stored(key)):
            raise UploadNotReceived(f"{where}: the file was never uploaded to the upload's URL", field=field) from e
        log.exception("could not read an upload")
        raise StorageUnavailable(f"could not read the upload ({e.__class__.__name__}); nothing was stored, "
                                 "try again") from e
    except Exception as e:  # noqa: BLE001 - S3 unreachable or stalled: retryable
        log.exception("could not read an upload")
        raise StorageUnavailable(f"could not read the upload ({e.__class__.__name__}); nothing was stored, "
                                 "try again") from e
    body = obj["Body"]
    try:
        # S3 enforces the POST's content-length-range; a stand-in (moto) may not: refuse before reading
        if obj.get("ContentLength", 0) > max_bytes:
            raise PayloadTooLarge(f"{where} is larger than {max_bytes} bytes", field=field)
        content = body.read(max_bytes + 1)
    except ProblemError:
        raise
    except Exception as e:  # noqa: BLE001 - the read stalled or broke off
        log.exception("could not read an upload")
        raise StorageUnavailable(f"could not read the upload ({e.__class__.__name__}); nothing was stored, "
                                 "try again") from e
    finally:
        body.close()
    if len(content) > max_bytes:
        raise PayloadTooLarge(f"{where} is larger than {max_bytes} bytes", field=field)
    return content


def discard_originals(upload_ids: list[UUID], run_id: UUID | None) -> None:
    """After a turn has stored its photos: mark its uploads used by ``run_id`` (one statement), then
    delete their originals. Best effort, never raises (the turn is under way): a failure is logged,
    and the bucket's lifecycle rule deletes what is left under ``pending/``."""
    ids = list(dict.fromkeys(upload_ids))
    if not ids:
        return
    try:
        with db.connection() as conn:
            marked = upload_rows.mark_consumed(conn, ids, run_id)
    except Exception:  # noqa: BLE001 - the turn goes on; the upload stays usable until it expires
        log.warning("could not mark %d upload(s) used by run %s", len(ids), run_id, exc_info=True)
        return
    if not marked:
        return
    try:
        result = s3.client().delete_objects(Bucket=get_settings().media_bucket, Delete={
            "Objects": [{"Key": r["key"]} for r in marked], "Quiet": True})
        if result.get("Errors"):
            log.warning("S3 refused to delete %d upload original(s): %s", len(result["Errors"]), result["Errors"][:3])
    except Exception:  # noqa: BLE001 - the lifecycle rule expires them
        log.warning("could not delete %d upload original(s)", len(marked), exc_info=True)
