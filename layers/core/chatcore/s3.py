"""S3 access for the non-agent functions (boto3 only, no agno): presigned reads, session deletion.

Keys are the ones the turn path writes through agno's S3MediaStorage:
``{MEDIA_PREFIX}{session_id}-{sha256[:32]}{ext}``, so a session's objects share one prefix.
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from typing import Any
from uuid import UUID

from chatcore.config import get_settings

_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """The process's S3 client, created lazily (SigV4 so presigned URLs work with KMS buckets)."""
    global _client
    with _lock:
        if _client is None:
            import boto3
            from botocore.config import Config

            s = get_settings()
            _client = boto3.client("s3", region_name=s.aws_region, endpoint_url=s.s3_endpoint_url,
                                   config=Config(signature_version="s3v4"))
        return _client


def session_prefix(session_id: UUID) -> str:
    return f"{get_settings().media_prefix}{session_id}-"


def media_key(session_id: UUID, content: bytes, mime_type: str) -> str:
    """The content-addressed key of an image of a session (same as the turn path writes)."""
    ext = mimetypes.guess_extension(mime_type) or ""
    return f"{session_prefix(session_id)}{hashlib.sha256(content).hexdigest()[:32]}{ext}"


def presigned_get(key: str) -> str:
    s = get_settings()
    return client().generate_presigned_url(
        "get_object", Params={"Bucket": s.media_bucket, "Key": key}, ExpiresIn=s.presigned_url_seconds)


def ensure_object(key: str, content: bytes, mime_type: str) -> None:
    """Upload ``content`` under ``key`` unless it is already there (keys are content-addressed)."""
    s = get_settings()
    c = client()
    try:
        c.head_object(Bucket=s.media_bucket, Key=key)
        return
    except c.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    c.put_object(Bucket=s.media_bucket, Key=key, Body=content, ContentType=mime_type,
                 Metadata={"content-sha256": hashlib.sha256(content).hexdigest()})


def delete_session_objects(session_id: UUID) -> int:
    """Delete every object of a session; returns how many were deleted. Raises if any failed."""
    s = get_settings()
    c = client()
    deleted = 0
    paginator = c.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=s.media_bucket, Prefix=session_prefix(session_id)):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not keys:
            continue
        result = c.delete_objects(Bucket=s.media_bucket, Delete={"Objects": keys, "Quiet": True})
        if result.get("Errors"):
            raise RuntimeError(f"S3 refused to delete {len(result['Errors'])} object(s)")
        deleted += len(keys)
    return deleted
