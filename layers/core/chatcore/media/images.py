"""Validate images sent by phones: base64 (standard or URL-safe, line-wrapped or not) that decodes to
a PNG, JPEG, GIF, WebP, HEIC/HEIF or AVIF image by its content. No Pillow here: ``photos`` decodes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from chatcore.errors import InvalidImage, PayloadTooLarge, ProblemError


def sniff_image_type(data: bytes) -> str | None:
    """The image MIME type read from the file's magic bytes, or None if it is not one we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp":  # ISO base media: the major brand names the format
        return _FTYP_BRANDS.get(data[8:12])
    return None


_FTYP_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"), "image/heic"),
    **dict.fromkeys((b"mif1", b"msf1"), "image/heif"),
    **dict.fromkeys((b"avif", b"avis"), "image/avif"),
}
# Types that name the same kind of file (an iPhone's HEIC says image/heif as often as image/heic).
_SAME_TYPE = {"image/heif": "image/heic", "image/jpg": "image/jpeg"}


_URL_SAFE = str.maketrans("-_", "+/")


@dataclass(frozen=True)
class ImageUpload:
    content: bytes
    mime_type: str


def decode_base64(data: str, *, where: str, max_bytes: int, invalid: type[ProblemError] = InvalidImage) -> bytes:
    """The bytes of a phone's base64 file (a photo or a document; ``where`` names it, e.g. ``images[0]``):
    standard or URL-safe, line-wrapped or not, padded or not, or a data URL. 413 over ``max_bytes``
    (refused before decoding), ``invalid`` (422) when it is not base64."""
    if not isinstance(data, str) or not data:
        raise invalid(f"{where}.data must be a non-empty base64 string", field=f"{where}.data")
    text = data.strip()
    if text.startswith("data:"):  # tolerate a data URL, common from mobile pickers
        _, _, text = text.partition(",")
    # Android's Base64.DEFAULT wraps lines every 76 characters; URL_SAFE uses - and _; padding is optional
    text = "".join(text.split()).translate(_URL_SAFE)
    text += "=" * (-len(text) % 4)
    # 4 base64 characters carry 3 bytes: refuse oversized input before decoding it.
    if len(text) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"{where} is larger than {max_bytes} bytes", field=f"{where}.data")
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise invalid(f"{where}.data is not valid base64", field=f"{where}.data") from e
    if len(content) > max_bytes:
        raise PayloadTooLarge(f"{where} is larger than {max_bytes} bytes", field=f"{where}.data")
    return content


def decode_image(data: str, claimed_mime_type: str | None, *, index: int, max_bytes: int) -> ImageUpload:
    """Decode one base64 image and check it; ``index`` names it in error messages."""
    where = f"images[{index}]"
    content = decode_base64(data, where=where, max_bytes=max_bytes)
    actual = sniff_image_type(content)
    if actual is None:
        raise InvalidImage(
            f"{where} is not a PNG, JPEG, GIF, WebP, HEIC or AVIF image", field=f"{where}.data"
        )
    if claimed_mime_type is not None and not same_type(claimed_mime_type, actual):
        raise InvalidImage(
            f"{where} is {actual} but mime_type says {claimed_mime_type}", field=f"{where}.mime_type"
        )
    return ImageUpload(content=content, mime_type=actual)


def same_type(claimed: str, actual: str) -> bool:
    """Whether a declared type names the kind of file ``actual`` (read from the bytes) is."""
    return _same(claimed) == _same(actual)


def _same(mime_type: str) -> str:
    mime_type = mime_type.lower()
    return _SAME_TYPE.get(mime_type, mime_type)
