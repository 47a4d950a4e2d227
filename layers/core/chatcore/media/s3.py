"""S3 access with boto3 alone (no agno): image uploads, presigned reads, a session's deletion.

Keys follow ``chatcore.media.keys``. Objects are private; clients get short-lived presigned URLs.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from chatcore import aws
from chatcore.config import get_settings
from chatcore.media import keys
from chatcore.media.images import sniff_image_type

# short timeouts and bounded retries: a stalled S3 fails a request in seconds (503 storage-unavailable),
# not after boto3's default 60 s x 5 attempts; SigV4 so presigned URLs work with KMS buckets
CLIENT = aws.Client("s3", lambda s: {"endpoint_url": s.s3_endpoint_url, "signature_version": "s3v4",
                                     "connect_timeout": 3, "read_timeout": s.s3_timeout,
                                     "retries": {"max_attempts": 3, "mode": "standard"}})


def client() -> Any:
    """The process's S3 client, created lazily."""
    return CLIENT.get()


def forget_client() -> None:
    """Drop the process's S3 client (its connections and credentials); the next call makes a new one."""
    CLIENT.forget()


def exists(key: str) -> bool:
    """Whether ``key`` is stored: a list of exactly that prefix (the functions may list only under
    the media prefix, so S3 answers a missing object's GET with 403, not 404)."""
    s = get_settings()
    listed = client().list_objects_v2(Bucket=s.media_bucket, Prefix=key, MaxKeys=1)
    return any(o["Key"] == key for o in listed.get("Contents", ()))


def session_prefix(session_id: UUID) -> str:
    return keys.session_prefix(get_settings().media_prefix, session_id)


def media_key(session_id: UUID, content: bytes, mime_type: str) -> str:
    """The content-addressed key of an image of a session (``chatcore.media.keys``)."""
    return keys.media_key(get_settings().media_prefix, session_id, content, mime_type)


def stored_image_key(image: dict, session_id: UUID) -> tuple[str | None, bytes | None]:
    """The S3 key of an image as a message row stores it (agno's image dict), and its bytes when the
    row keeps it inline: a large image names its object by reference; a small one is kept inline,
    and the turn put it in S3 too, under its content key (its type read from its bytes). None when
    the row names no object."""
    key = (image.get("media_reference") or {}).get("storage_key")
    if key is not None or not isinstance(image.get("content"), str):
        return key, None
    content = base64.b64decode(image["content"])
    mime = sniff_image_type(content) or image.get("mime_type") or "application/octet-stream"
    return media_key(session_id, content, mime), content


def presigned_get(key: str) -> str:
    s = get_settings()
    return client().generate_presigned_url(
        "get_object", Params={"Bucket": s.media_bucket, "Key": key}, ExpiresIn=s.presigned_url_seconds)


def get_image(key: str) -> bytes:
    """The bytes of a stored image."""
    return client().get_object(Bucket=get_settings().media_bucket, Key=key)["Body"].read()


def put_image(key: str, content: bytes, mime_type: str) -> None:
    """Store an image under ``key`` (private; its sha256 in the object's metadata)."""
    client().put_object(Bucket=get_settings().media_bucket, Key=key, Body=content, ContentType=mime_type,
                        Metadata={"content-sha256": keys.content_hash(content)})


def spool_key(session_id: UUID, run_id: UUID) -> str:
    """The key of a spooled turn's record (``chatcore.media.keys``)."""
    return keys.spool_key(get_settings().media_prefix, session_id, run_id)


def put_text(key: str, text: str) -> None:
    """Store a JSON document under ``key`` (private)."""
    client().put_object(Bucket=get_settings().media_bucket, Key=key, Body=text.encode(),
                        ContentType="application/json")


def get_text(key: str) -> str | None:
    """The text stored under ``key``; None when there is none (S3 answers a missing object 404, or 403
    where the function may not list the bucket)."""
    from botocore.exceptions import ClientError

    try:
        return client().get_object(Bucket=get_settings().media_bucket, Key=key)["Body"].read().decode()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "403", "AccessDenied"):
            return None
        raise


def delete_session_objects(session_id: UUID) -> int:
    """Delete every object of a session; returns how many were deleted. Raises if any failed."""
    return delete_keys(list(list_keys(session_prefix(session_id))))


def list_keys(prefix: str) -> Iterator[str]:
    """The keys of the objects under ``prefix``, a page (1,000) per request."""
    paginator = client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=get_settings().media_bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            yield obj["Key"]


def delete_keys(keys_: list[str]) -> int:
    """Delete the objects ``keys_`` (a missing one is no error), 1,000 per request; how many were
    asked. Raises if S3 refused any."""
    s = get_settings()
    for start in range(0, len(keys_), 1000):
        batch = [{"Key": k} for k in keys_[start:start + 1000]]
        result = client().delete_objects(Bucket=s.media_bucket, Delete={"Objects": batch, "Quiet": True})
        if result.get("Errors"):
            raise RuntimeError(f"S3 refused to delete {len(result['Errors'])} object(s)")
    return len(keys_)


def export_key(export_id: UUID) -> str:
    """The key of an account's export (``chatcore.media.keys``)."""
    return keys.export_key(get_settings().media_prefix, export_id)


# The size of each part of a streamed upload (S3: at least 5 MiB but the last, at most 10,000 parts:
# 80 GB at this size).
PART_BYTES = 8 * 1024 * 1024


class MultipartWriter:
    """A write-only stream whose bytes go to S3 as a multipart upload while they are written: a part
    is uploaded each time ``PART_BYTES`` are buffered, so at most one part is held in memory and
    nothing on disk. ``close()`` uploads the last part and completes the object; ``abort()`` (or a
    ``with`` block left by an exception) discards the upload. ``size`` counts the bytes written."""

    def __init__(self, key: str, *, content_type: str, content_disposition: str | None = None,
                 part_bytes: int = PART_BYTES):
        self.key, self.part_bytes = key, part_bytes
        self.size = 0
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        extra = {"ContentDisposition": content_disposition} if content_disposition else {}
        self._upload_id = client().create_multipart_upload(
            Bucket=get_settings().media_bucket, Key=key, ContentType=content_type, **extra)["UploadId"]
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self.part_bytes:
            self._upload_part(bytes(self._buffer[:self.part_bytes]))
            del self._buffer[:self.part_bytes]
        return len(data)

    def flush(self) -> None:
        pass

    def _upload_part(self, body: bytes) -> None:
        number = len(self._parts) + 1
        etag = client().upload_part(Bucket=get_settings().media_bucket, Key=self.key, UploadId=self._upload_id,
                                    PartNumber=number, Body=body)["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})

    def close(self) -> None:
        if self.closed:
            return
        if self._buffer or not self._parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        client().complete_multipart_upload(Bucket=get_settings().media_bucket, Key=self.key,
                                           UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        self.closed = True

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            client().abort_multipart_upload(Bucket=get_settings().media_bucket, Key=self.key,
                                            UploadId=self._upload_id)

    def __enter__(self) -> "MultipartWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
