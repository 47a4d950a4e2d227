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


def _upload_reference(content: bytes, mime_type: str, session_id: UUID, media_id: str) -> dict:
    image = to_agno_image(ImageUpload(content=content, mime_type=mime_type), session_id, media_id)
    return image.media_reference.to_dict()


def storable_message(message, session_id: UUID) -> dict:
    """``message.to_dict()`` made safe to store: no image base64 above the threshold, no transient URL.

    Images a team forwarded to a member arrive here with bytes or a presigned URL; large ones
    become references to the (content-addressed, so deduplicated) S3 object of the session.
    """
    import base64

    data = message.to_dict()
    threshold = get_settings().inline_image_max_bytes
    for image in data.get("images") or []:
        ref = image.get("media_reference")
        if ref:
            ref.pop("url", None)
            image.pop("content", None)
            image.pop("url", None)
            continue
        content = image.get("content")
        if isinstance(content, str):
            raw = base64.b64decode(content)
            if len(raw) > threshold:
                from chatcore.images import sniff_image_type

                mime = sniff_image_type(raw) or image.get("mime_type") or "application/octet-stream"
                image["media_reference"] = _upload_reference(raw, mime, session_id, image.get("id") or "image")
                image.pop("content", None)
        if isinstance(image.get("url"), str) and "X-Amz-Signature" in image["url"]:
            image.pop("url")
    return data
