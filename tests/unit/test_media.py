"""Photos without S3: the one key rule (``chatcore.media.keys``) and the validation of what phones send
(``chatcore.media.images``). The upload, presigning and deletion run against moto in tests/integration."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from chatcore.errors import InvalidImage, PayloadTooLarge
from chatcore.media.images import ImageUpload, decode_image, sniff_image_type
from chatcore.media.keys import content_hash, media_key, session_prefix
from tests.support.images import LARGE_PNG, SMALL_PNG, b64

FIVE_MB = 5 * 1024 * 1024
# Minimal files whose magic bytes say what they are.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 16 + b"\xff\xd9"
GIF87 = b"GIF87a" + b"\x01\x00\x01\x00\x00\x00\x00;"
GIF89 = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF" + (30).to_bytes(4, "little") + b"WEBPVP8 " + b"\x00" * 22
SESSION = uuid.UUID("0190b3f4-7c1e-7a2b-8c3d-4e5f60718293")


# --------------------------------------------------------------------------- keys


def test_the_key_is_the_session_prefix_the_content_hash_and_the_extension():
    key = media_key("media/", SESSION, LARGE_PNG, "image/png")
    digest = hashlib.sha256(LARGE_PNG).hexdigest()
    assert key == f"media/{SESSION}-{digest[:32]}.png"
    assert key.startswith(session_prefix("media/", SESSION)) and session_prefix("media/", SESSION) == f"media/{SESSION}-"
    assert content_hash(LARGE_PNG) == digest and len(digest) == 64


def test_same_content_same_key_whatever_the_session_id_type():
    assert media_key("media/", SESSION, LARGE_PNG, "image/png") == media_key("media/", SESSION, bytes(LARGE_PNG),
                                                                               "image/png")
    assert media_key("media/", SESSION, LARGE_PNG, "image/png") == media_key("media/", str(SESSION), LARGE_PNG,
                                                                               "image/png")


def test_different_content_or_session_is_a_different_key():
    other_session = uuid.UUID("0190b3f4-7c1e-7a2b-8c3d-4e5f60718294")
    a = media_key("media/", SESSION, LARGE_PNG, "image/png")
    assert media_key("media/", SESSION, SMALL_PNG, "image/png") != a
    b = media_key("media/", other_session, LARGE_PNG, "image/png")
    assert b != a and not b.startswith(session_prefix("media/", SESSION))
    # the hash part is the same: only the session's prefix differs
    assert a.removeprefix(session_prefix("media/", SESSION)) == b.removeprefix(session_prefix("media/", other_session))


def test_one_session_is_never_a_prefix_of_another():
    """Listing ``{prefix}{session}-`` must not find another session's objects, even one whose id starts
    with this one's text (the trailing dash ends the id)."""
    short, longer = "abc", "abcd"
    assert not media_key("media/", longer, SMALL_PNG, "image/png").startswith(session_prefix("media/", short))


@pytest.mark.parametrize("mime_type, ext", [
    ("image/png", ".png"), ("image/jpeg", ".jpg"), ("image/gif", ".gif"), ("image/webp", ".webp"),
    ("application/x-not-a-type", ""),
])
def test_the_extension_comes_from_the_mime_type(mime_type, ext):
    key = media_key("p/", SESSION, b"bytes", mime_type)
    assert key == f"p/{SESSION}-{content_hash(b'bytes')[:32]}{ext}"


def test_the_media_prefix_is_used_verbatim():
    assert media_key("", SESSION, b"x", "image/png").startswith(f"{SESSION}-")
    assert media_key("tenant/a/", SESSION, b"x", "image/png").startswith(f"tenant/a/{SESSION}-")


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("data, mime_type", [
    pytest.param(SMALL_PNG, "image/png", id="png"),
    pytest.param(JPEG, "image/jpeg", id="jpeg"),
    pytest.param(b"\xff\xd8\xff", "image/jpeg", id="jpeg-magic-only"),
    pytest.param(GIF87, "image/gif", id="gif87a"),
    pytest.param(GIF89, "image/gif", id="gif89a"),
    pytest.param(WEBP, "image/webp", id="webp"),
    pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic", id="heic"),
    pytest.param(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00", "image/heif", id="heif"),
    pytest.param(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "image/avif", id="avif"),
    pytest.param(b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00", None, id="mp4-is-not-an-image"),
    pytest.param(b"\x00\x00\x00\x18ftyphei", None, id="ftyp-cut-short"),
    pytest.param(b"", None, id="empty"),
    pytest.param(b"\x89PNG\r\n\x1a", None, id="png-magic-cut-short"),
    pytest.param(b"\xff\xd8", None, id="jpeg-magic-cut-short"),
    pytest.param(b"GIF88a" + b"\x00" * 8, None, id="gif-wrong-version"),
    pytest.param(b"RIFF\x00\x00\x00\x00WAVEfmt ", None, id="riff-wave"),
    pytest.param(b"RIFF\x00\x00\x00\x00WEB", None, id="riff-webp-cut-short"),
    pytest.param(b"%PDF-1.7\n", None, id="pdf"),
    pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", None, id="svg"),
    pytest.param(b"BM" + b"\x00" * 30, None, id="bmp"),
    pytest.param(b"x" + SMALL_PNG, None, id="png-magic-not-at-the-start"),
])
def test_sniff_image_type_reads_only_the_magic_bytes(data, mime_type):
    assert sniff_image_type(data) == mime_type


# --------------------------------------------------------------------------- decoding


def test_decode_returns_the_bytes_and_the_sniffed_type():
    assert decode_image(b64(SMALL_PNG), None, index=0, max_bytes=FIVE_MB) == ImageUpload(SMALL_PNG, "image/png")
    assert decode_image(b64(JPEG), "image/jpeg", index=0, max_bytes=FIVE_MB) == ImageUpload(JPEG, "image/jpeg")
    # the claimed type is compared case-insensitively, aliases allowed; the sniffed one is what is kept
    assert decode_image(b64(WEBP), "IMAGE/WEBP", index=0, max_bytes=FIVE_MB).mime_type == "image/webp"
    assert decode_image(b64(JPEG), "image/jpg", index=0, max_bytes=FIVE_MB).mime_type == "image/jpeg"
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 12
    assert decode_image(b64(heic), "image/heif", index=0, max_bytes=FIVE_MB) == ImageUpload(heic, "image/heic")


@pytest.mark.parametrize("data", [
    pytest.param(lambda raw: f"data:image/png;base64,{b64(raw)}", id="data-url"),
    pytest.param(lambda raw: f"  {b64(raw)}\n", id="surrounding-whitespace"),
    pytest.param(lambda raw: f" data:;base64,{b64(raw)} ", id="data-url-without-type"),
])
def test_decode_tolerates_a_data_url_and_whitespace(data):
    assert decode_image(data(SMALL_PNG), "image/png", index=0, max_bytes=FIVE_MB).content == SMALL_PNG


@pytest.mark.parametrize("data, detail", [
    pytest.param("", ".data must be a non-empty base64 string", id="empty"),
    pytest.param(None, ".data must be a non-empty base64 string", id="none"),
    pytest.param(b"iVBORw0KGgo=", ".data must be a non-empty base64 string", id="bytes-not-str"),
    pytest.param("not base64!!", ".data is not valid base64", id="not-base64"),
    pytest.param("iVBORw0K*Ggo=", ".data is not valid base64", id="stray-character"),
    pytest.param("iVBORw0KG", ".data is not valid base64", id="impossible-length"),
    pytest.param("data:image/png;base64,", " is not a PNG, JPEG, GIF", id="data-url-without-data"),
    pytest.param(b64(b"hello, plain text"), " is not a PNG, JPEG, GIF", id="text"),
    pytest.param(b64(b"%PDF-1.7\n" + b"\x00" * 64), " is not a PNG, JPEG, GIF", id="pdf"),
    pytest.param(b64(b"BM" + b"\x00" * 64), " is not a PNG, JPEG, GIF", id="bmp"),
])
def test_decode_refuses_what_is_not_an_image_naming_the_field(data, detail):
    with pytest.raises(InvalidImage) as info:
        decode_image(data, None, index=2, max_bytes=FIVE_MB)
    assert info.value.extra == {"field": "images[2].data"}
    assert info.value.detail.startswith("images[2]" + detail), info.value.detail
    assert info.value.status == 422 and info.value.code == "invalid-image"


@pytest.mark.parametrize("encode", [
    pytest.param(lambda raw: base64.urlsafe_b64encode(raw).decode(), id="url-safe-alphabet"),
    pytest.param(lambda raw: b64(raw).rstrip("="), id="without-padding"),
    pytest.param(lambda raw: "\n".join(b64(raw)[i:i + 76] for i in range(0, len(b64(raw)), 76)), id="wrapped-at-76"),
])
def test_decode_accepts_the_base64_phones_send(encode):
    raw = b"\xfb\xff" * 40 + SMALL_PNG  # bytes whose base64 uses + and / (- and _ URL-safe)
    raw = SMALL_PNG + raw  # still a PNG by its magic bytes
    text = encode(raw)
    assert text != b64(raw)  # not the plain standard encoding: the case is exercised
    assert decode_image(text, "image/png", index=0, max_bytes=FIVE_MB).content == raw


@pytest.mark.parametrize("raw, claimed, actual", [
    (JPEG, "image/png", "image/jpeg"),
    (SMALL_PNG, "image/gif", "image/png"),
    (SMALL_PNG, "image/svg+xml", "image/png"),
    (GIF89, "image/jpg", "image/gif"),
    (JPEG, "image/heic", "image/jpeg"),
])
def test_decode_refuses_a_claimed_type_the_bytes_contradict(raw, claimed, actual):
    with pytest.raises(InvalidImage) as info:
        decode_image(b64(raw), claimed, index=1, max_bytes=FIVE_MB)
    assert info.value.extra == {"field": "images[1].mime_type"}
    assert info.value.detail == f"images[1] is {actual} but mime_type says {claimed}"


def test_image_size_limit_is_5_mb_decoded():
    just_fits = SMALL_PNG + b"\x00" * (FIVE_MB - len(SMALL_PNG))
    assert decode_image(b64(just_fits), "image/png", index=0, max_bytes=FIVE_MB).content == just_fits
    with pytest.raises(PayloadTooLarge) as e:
        decode_image(b64(just_fits + b"\x00"), None, index=3, max_bytes=FIVE_MB)
    assert e.value.extra["field"] == "images[3].data" and "larger than 5242880 bytes" in e.value.detail


def test_an_oversized_image_is_refused_before_it_is_decoded():
    """Base64 far over the limit is refused as too large by its length, even when it is not base64 at
    all (decoding it would be wasted work); at the limit itself the decoded size decides."""
    with pytest.raises(PayloadTooLarge) as e:
        decode_image("!" * 200, None, index=0, max_bytes=100)
    assert e.value.status == 413 and e.value.extra == {"field": "images[0].data"}
    exactly = SMALL_PNG + b"\x00" * (300 - len(SMALL_PNG))
    assert decode_image(b64(exactly), None, index=0, max_bytes=300).content == exactly
    with pytest.raises(PayloadTooLarge):
        decode_image(b64(exactly + b"\x00"), None, index=0, max_bytes=300)
