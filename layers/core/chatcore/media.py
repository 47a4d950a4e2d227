"""Images of a turn: small ones stay inline, large ones go to S3 through agno's media storage."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from uuid import UUID

from agno.media import Image
from agno.media.reference import MediaReference
from agno.media.storage.s3 import S3MediaStorage

from chatcore.config import get_settings
from chatcore.images import ImageUpload


@lru_cache(maxsize=1)
def media_storage() -> S3MediaStorage:
    """The process's S3 media storage (private objects, presigned URLs for reads)."""
    s = get_settings()
    return S3MediaStorage(
        bucket=s.media_bucket,
        prefix=s.media_prefix,
        region=s.aws_region,
        endpoint_url=s.s3_endpoint_url,
        presigned_url_expiry=s.presigned_url_seconds,
    )


def session_media_prefix(session_id: UUID) -> str:
    """Every S3 key of a session starts with this (used to delete a session's objects)."""
    return f"{get_settings().media_prefix}{session_id}-"


def to_agno_image(upload: ImageUpload, session_id: UUID, media_id: str) -> Image:
    """An agno Image for ``upload``: inline below the threshold, else uploaded and referenced.

    The S3 key is derived from the session and the content hash, so the same photo sent twice in
    a session is one object.
    """
    settings = get_settings()
    if len(upload.content) <= settings.inline_image_max_bytes:
        return Image(id=media_id, content=upload.content, mime_type=upload.mime_type)
    storage = media_storage()
    content_hash = hashlib.sha256(upload.content).hexdigest()
    storage_key = storage.upload(f"{session_id}-{content_hash[:32]}", upload.content, mime_type=upload.mime_type)
    reference = MediaReference(
        media_id=media_id,
        storage_key=storage_key,
        session_id=str(session_id),
        storage_backend=storage.backend_name,
        bucket=storage.bucket,
        region=storage.region,
        mime_type=upload.mime_type,
        size=len(upload.content),
        content_hash=content_hash,
        media_type="image",
    )
    return Image(id=media_id, mime_type=upload.mime_type, media_reference=reference)
