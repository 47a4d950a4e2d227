"""Images of a turn: small ones stay inline, large ones go to S3 through agno's media storage."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from uuid import UUID

from agno.media import Image
from agno.media.reference import MediaReference
from agno.media.storage.s3 import S3MediaStorage
from agno.media.storage.utils import build_storage_key

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
    media_key = f"{session_id}-{content_hash[:32]}"
    storage_key = build_storage_key(media_key, prefix=storage.prefix, mime_type=upload.mime_type)
    if _image_cache.get(storage_key) is None:  # uploaded by this process already: content-addressed
        storage_key = storage.upload(media_key, upload.content, mime_type=upload.mime_type)
        _image_cache.put(storage_key, upload.content)
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


class _ImageCache:
    """Image bytes by S3 key, least recently used first out, bounded in bytes (per process)."""

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self.items: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0

    def get(self, key: str) -> bytes | None:
        data = self.items.get(key)
        if data is not None:
            self.items.move_to_end(key)
        return data

    def put(self, key: str, data: bytes) -> None:
        if key in self.items or len(data) > self.max_bytes:
            return
        self.items[key] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.size -= len(old)


_image_cache = _ImageCache(max_bytes=64 * 1024 * 1024)


def remember_image(key: str, content: bytes) -> None:
    """Keep the bytes of an image this process just uploaded (the next turns will need them)."""
    _image_cache.put(key, content)


def inline_for_model(messages) -> None:
    """Give the model the bytes of the referenced images of ``messages`` (history loaded from rows).

    Without this, agno presigns each reference and Claude's formatter downloads it again for every
    model call of every turn. Bytes come from this process's cache or one S3 read. The messages are
    the model's copy (never stored again), so replacing the reference with the bytes is safe.
    """
    storage = media_storage()
    for message in messages:
        for image in message.images or []:
            ref = getattr(image, "media_reference", None)
            if ref is None or ref.storage_backend != storage.backend_name or ref.bucket != storage.bucket:
                continue
            data = _image_cache.get(ref.storage_key)
            if data is None:
                data = storage.download(ref.storage_key)
                _image_cache.put(ref.storage_key, data)
            image.content = data
            image.mime_type = image.mime_type or ref.mime_type
            image.media_reference = None
            image.url = None
