"""The bridge between a turn's images and documents and agno: small images stay inline in the message
row, large ones go to S3 and the row keeps an agno ``MediaReference``; a PDF always goes to S3 (the row
keeps its reference, name and page count); the model gets the bytes.

The only module of ``chatcore.media`` that imports agno. Keys come from ``chatcore.media.keys``
and uploads go through ``chatcore.media.s3``; agno's ``S3MediaStorage`` reads them back (agno
refreshes references before model calls with it).
"""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict
from functools import lru_cache
from uuid import UUID

from agno.media import File, Image
from agno.media.reference import MediaReference
from agno.media.storage.base import AsyncMediaStorage
from agno.media.storage.s3 import S3MediaStorage

from chatcore.config import get_settings
from chatcore.media import keys, s3
from chatcore.media.documents import PDF_MIME, DocumentUpload
from chatcore.media.images import ImageUpload, sniff_image_type
from chatcore.media.photos import model_ready
from chatcore.observability import timed


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


class ThreadedMediaStorage(AsyncMediaStorage):
    """The process's S3 media storage as agno's async kind, for the agents and teams that run turns.

    Before each run agno refreshes the media references of every message headed for the model. With a
    sync storage it does that in a worker thread for EACH message (``asyncio.to_thread`` per message,
    text turns too: a thread hop per history message, on the turn's path before the model call); with
    an async one it awaits the storage only for a message that holds a reference. This one refreshes
    such a reference in a worker thread as before (the same S3MediaStorage, the same presigned URL)."""

    def __init__(self, storage: S3MediaStorage):
        self.storage = storage
        self.backend_name = storage.backend_name
        self.bucket = storage.bucket
        self.region = storage.region
        self.persist_remote_urls = storage.persist_remote_urls

    async def upload(self, media_id: str, content: bytes, **kwargs) -> str:
        return await asyncio.to_thread(self.storage.upload, media_id, content, **kwargs)

    async def download(self, storage_key: str) -> bytes:
        return await asyncio.to_thread(self.storage.download, storage_key)

    async def get_url(self, storage_key: str, *, expires_in: int | None = None) -> str | None:
        return await asyncio.to_thread(self.storage.get_url, storage_key, expires_in=expires_in)

    async def delete(self, storage_key: str) -> bool:
        return await asyncio.to_thread(self.storage.delete, storage_key)

    async def exists(self, storage_key: str) -> bool:
        return await asyncio.to_thread(self.storage.exists, storage_key)


@lru_cache(maxsize=1)
def model_media_storage() -> ThreadedMediaStorage:
    """The media storage given to the agents and teams that run turns (``ThreadedMediaStorage``)."""
    return ThreadedMediaStorage(media_storage())


def store_photo(upload: ImageUpload | DocumentUpload, session_id: UUID) -> str:
    """Put a turn's photo or document in S3 (every photo, inline ones too, so reads never write); its key.

    Called before the turn's transaction: no network call while a database transaction or the
    session's lock is held. The key is content-addressed (``chatcore.media.keys``): the same photo
    sent twice in a session is one object, and this process uploads it once.
    """
    storage_key = s3.media_key(session_id, upload.content, upload.mime_type)
    if _image_cache.get(storage_key) is None:
        with timed("S3 upload"):
            s3.put_image(storage_key, upload.content, upload.mime_type)
        _image_cache.put(storage_key, upload.content)
    return storage_key


def discard_photos(keys_: list[str]) -> None:
    """Delete photo objects of a session that no stored message names (those of a refused turn).
    This process forgets them first, so a later turn with the same photo puts it in S3 again.
    Raises if S3 refused the deletion."""
    for key in keys_:
        _image_cache.forget(key)
    s3.delete_keys(keys_)


def to_agno_image(upload: ImageUpload, session_id: UUID, media_id: str) -> Image:
    """An agno Image for ``upload`` (already in S3: ``store_photo``): inline in the row below the
    threshold, else a reference to its S3 object. No network call."""
    settings = get_settings()
    if len(upload.content) <= settings.inline_image_max_bytes:
        return Image(id=media_id, content=upload.content, mime_type=upload.mime_type)
    return Image(id=media_id, mime_type=upload.mime_type, media_reference=_reference(
        upload.content, upload.mime_type, session_id, media_id, "image"))


def _reference(content: bytes, mime_type: str, session_id: UUID, media_id: str, media_type: str) -> MediaReference:
    storage = media_storage()
    return MediaReference(
        media_id=media_id,
        storage_key=s3.media_key(session_id, content, mime_type),
        session_id=str(session_id),
        storage_backend=storage.backend_name,
        bucket=storage.bucket,
        region=storage.region,
        mime_type=mime_type,
        size=len(content),
        content_hash=keys.content_hash(content),
        media_type=media_type,
    )


def to_agno_file(upload: DocumentUpload, session_id: UUID, media_id: str) -> File:
    """The stored form of a turn's PDF (already in S3: ``store_photo``): a reference to its object, its
    name and page count (``metadata.pages``); never its bytes. No network call."""
    return File(id=media_id, mime_type=upload.mime_type, name=upload.name, filename=upload.name,
                size=len(upload.content), metadata={"pages": upload.pages},
                media_reference=_reference(upload.content, upload.mime_type, session_id, media_id, "file"))


def model_file(upload: DocumentUpload, media_id: str) -> File:
    """The model's copy of a turn's PDF: its bytes (agno sends a base64 document block), without the
    citations agno would switch on by default (the same block on every replay of the history)."""
    return File(id=media_id, content=upload.content, mime_type=upload.mime_type, name=upload.name,
                filename=upload.name, size=len(upload.content), metadata={"pages": upload.pages}, citations=False)


def storable_message(message, session_id: UUID) -> dict:
    """``message.to_dict()`` made safe to store: no image base64 above the threshold, no transient URL.

    Images a team forwarded to a member arrive here with bytes or a presigned URL; large ones
    become references to the (content-addressed, so deduplicated) S3 object of the session. Called
    before the turn's final transaction opens.
    """
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
                mime = sniff_image_type(raw) or image.get("mime_type") or "application/octet-stream"
                upload = ImageUpload(content=raw, mime_type=mime)
                store_photo(upload, session_id)  # the user's photo, uploaded by this turn already: no call
                image["media_reference"] = to_agno_image(
                    upload, session_id, image.get("id") or "image").media_reference.to_dict()
                image.pop("content", None)
        if isinstance(image.get("url"), str) and "X-Amz-Signature" in image["url"]:
            image.pop("url")
    for file in data.get("files") or []:
        _storable_file(file, session_id)
    return data


def _storable_file(file: dict, session_id: UUID) -> None:
    """A document of a message made safe to store: its reference, never its bytes or a transient URL
    (a team's member gets the user's PDF with its bytes: the same, content-addressed object)."""
    file.pop("url", None)
    ref = file.get("media_reference")
    content = file.pop("content", None)
    if ref:
        ref.pop("url", None)
        return
    if isinstance(content, str):
        raw = base64.b64decode(content)
        mime = file.get("mime_type") or PDF_MIME
        store_photo(DocumentUpload(content=raw, pages=(file.get("metadata") or {}).get("pages") or 0,
                                   mime_type=mime), session_id)
        file["media_reference"] = _reference(raw, mime, session_id, file.get("id") or "file", "file").to_dict()


class _ImageCache:
    """Image bytes by S3 key, least recently used first out, bounded in bytes (per process)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.items: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0

    def get(self, key: str) -> bytes | None:
        data = self.items.get(key)
        if data is not None:
            self.items.move_to_end(key)
        return data

    def forget(self, key: str) -> None:
        data = self.items.pop(key, None)
        if data is not None:
            self.size -= len(data)

    def put(self, key: str, data: bytes) -> None:
        if key in self.items or len(data) > self.max_bytes:
            return
        self.items[key] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.size -= len(old)


_image_cache = _ImageCache(max_bytes=64 * 1024 * 1024)


def _stored_bytes(key: str, prepare=None) -> bytes:
    """The bytes of the session's object ``key``: from this process's cache, else one S3 read (with our
    client: short timeouts, bounded retries), ``prepare``d, then cached."""
    data = _image_cache.get(key)
    if data is None:
        with timed("S3 read"):
            data = s3.get_image(key)
        if prepare is not None:
            data = prepare(data)
        _image_cache.put(key, data)
    return data


def inline_for_model(messages) -> None:
    """Give the model the bytes of the referenced images and documents of ``messages`` (history loaded
    from rows).

    Without this, agno presigns each reference and Claude's formatter downloads it again for every
    model call of every turn. Bytes come from this process's cache or one S3 read (a photo stored
    before normalisation existed is normalised then, for the model's copy only). The messages are
    the model's copy (never stored again), so replacing the reference with the bytes is safe. A
    document is sent as the same base64 block as on its first turn (no citations).
    """
    storage = media_storage()

    def ours(ref) -> bool:
        return ref is not None and ref.storage_backend == storage.backend_name and ref.bucket == storage.bucket

    for message in messages:
        for image in message.images or []:
            ref = getattr(image, "media_reference", None)
            if not ours(ref):
                continue
            # a photo stored before normalisation may be too large: model_ready
            data = _stored_bytes(ref.storage_key, model_ready)
            image.content = data
            image.mime_type = sniff_image_type(data) or image.mime_type or ref.mime_type
            image.media_reference = None
            image.url = None
        for file in message.files or []:
            ref = getattr(file, "media_reference", None)
            if not ours(ref):
                continue
            file.content = _stored_bytes(ref.storage_key)
            file.mime_type = file.mime_type or ref.mime_type or PDF_MIME
            file.citations = False
            file.media_reference = None
            file.url = None
