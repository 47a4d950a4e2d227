"""Photos normalised at the door: what a phone sends becomes what is stored, what the model sees and
what the app gets back. The original is never kept.

Every photo is decoded fully (a corrupt file, a header that lies about its size, or a decompression
bomb is refused with 422 ``invalid-image``), turned upright by its EXIF orientation, converted to
sRGB, stripped of every metadata block (EXIF with its GPS position, camera and timestamps, XMP, ICC,
comments), downscaled so its long edge is at most ``IMAGE_MAX_EDGE`` (default 1568 px) and its
area at most ``IMAGE_MAX_PIXELS`` (1.15 megapixels: what Claude would downscale to anyway), and
re-encoded: JPEG for photos; PNG for images with transparency or flat graphics (screenshots,
diagrams: few colours, where JPEG would smear the text), WebP when a PNG would be too large.

Reads PNG, JPEG, GIF (first frame), WebP, HEIC/HEIF (iPhones' default, through pi-heif: libheif's decoder
without the HEVC encoder of pillow-heif) and
AVIF (Pillow's own plugin). Pillow is imported here only, when a photo arrives, so functions that
never handle one do not pay for it at cold start.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chatcore.config import Settings, get_settings
from chatcore.errors import InvalidImage
from chatcore.media.images import ImageUpload

# Formats Pillow may open: anything else (PSD, TIFF, BMP, EPS...) is refused before decoding.
READABLE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "HEIF", "AVIF")
JPEG_QUALITY = 85
WEBP_QUALITY = 90
# A flat graphic (a screenshot, a diagram) has few distinct colours; such an image stays lossless.
GRAPHIC_MAX_COLOURS = 4096
# An encoded image must stay under the API's 5 MB limit on its base64 (4/3 of the bytes).
MAX_ENCODED_BYTES = 5 * 1024 * 1024 * 3 // 4 - 1024


@dataclass(frozen=True)
class Limits:
    """A photo's long edge and area after normalisation, and the largest photo decoded at all."""

    max_edge: int
    max_pixels: int
    max_decode_pixels: int

    @classmethod
    def of(cls, s: Settings) -> Limits:
        """The limits of the settings ``s`` (IMAGE_MAX_EDGE, IMAGE_MAX_PIXELS, IMAGE_MAX_DECODE_PIXELS)."""
        return cls(s.image_max_edge, s.image_max_pixels, s.image_max_decode_pixels)

    @classmethod
    def configured(cls) -> Limits:
        """The limits of this process's settings."""
        return cls.of(get_settings())


@dataclass(frozen=True)
class Photo:
    """A normalised photo: its bytes and type, and its size in pixels."""

    upload: ImageUpload
    width: int
    height: int


@lru_cache(maxsize=1)
def _pillow() -> Any:
    """Pillow with HEIF/HEIC registered (imported on first use)."""
    from PIL import Image

    try:
        import pi_heif

        pi_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - a layer without pi-heif still reads the other formats
        pass
    return Image


def target_size(width: int, height: int, limits: Limits) -> tuple[int, int]:
    """The size after downscaling: long edge <= max_edge and area <= max_pixels, aspect kept."""
    scale = min(1.0, limits.max_edge / max(width, height), math.sqrt(limits.max_pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    # the epsilon keeps 6000 x (1568 / 6000) at 1568, not 1567.9999...
    return max(1, math.floor(width * scale + 1e-6)), max(1, math.floor(height * scale + 1e-6))


def _open(content: bytes, limits: Limits, **options: Any) -> Any:
    """``content`` opened by Pillow (its header read, nothing decoded)."""
    Image = _pillow()
    # Pillow refuses (DecompressionBombError) images over twice this before decoding anything; ours
    # (Limits.max_decode_pixels) is checked right after the header is read
    Image.MAX_IMAGE_PIXELS = limits.max_decode_pixels
    return Image.open(io.BytesIO(content), **options)


def normalise(content: bytes, *, where: str = "image", limits: Limits | None = None) -> Photo:
    """The normalised photo of ``content`` (see the module) within ``limits`` (default: the configured
    ones); InvalidImage when it cannot be read."""
    limits = limits or Limits.configured()
    Image = _pillow()
    from PIL import ImageOps

    try:
        img = _open(content, limits, formats=READABLE_FORMATS)
        width, height = img.size
        if width < 1 or height < 1 or width * height > limits.max_decode_pixels:
            raise InvalidImage(
                f"{where} is {width}x{height} pixels; at most {limits.max_decode_pixels:,} pixels are accepted",
                field=f"{where}.data")
        source_format = img.format
        if source_format == "JPEG":
            # decode at the smallest scale (1/2, 1/4, 1/8) still at least twice the target: much faster
            img.draft("RGB", tuple(2 * side for side in target_size(width, height, limits)))
        img.load()  # the full decode: a truncated or corrupt file fails here, not later
        img = ImageOps.exif_transpose(img)
        img = _to_srgb(img)
        img = _plain_pixels(img, Image)
        w, h = target_size(*img.size, limits)
        if (w, h) != img.size:
            img = img.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        data, mime = _encode(img, source_format)
    except InvalidImage:
        raise
    except Image.DecompressionBombError as e:
        raise InvalidImage(f"{where} declares more pixels than are accepted ({limits.max_decode_pixels:,}); "
                           "it was not decoded", field=f"{where}.data") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InvalidImage(f"{where} could not be read as an image ({_reason(e)})", field=f"{where}.data") from e
    return Photo(ImageUpload(content=data, mime_type=mime), img.width, img.height)


def _reason(e: Exception) -> str:
    text = str(e).split("\n")[0][:200]
    return f"{e.__class__.__name__}: {text}" if text else e.__class__.__name__


def _to_srgb(img: Any) -> Any:
    """Pixels in sRGB (phones shoot in Display P3); the ICC profile itself is then dropped."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA"):
        return img
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode=img.mode)
    except Exception:  # noqa: BLE001 - a broken profile: keep the pixels as they are
        return img


def _plain_pixels(img: Any, Image: Any) -> Any:
    """A new image holding only the pixels (RGB, or RGBA when transparent): no metadata survives."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    mode = "RGBA" if has_alpha else "RGB"
    pixels = img.convert(mode)
    if mode == "RGBA" and pixels.getextrema()[3][0] == 255:  # an alpha channel with nothing transparent
        pixels = pixels.convert("RGB")
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    return clean


def _encode(img: Any, source_format: str | None) -> tuple[bytes, str]:
    lossless = img.mode == "RGBA" or (
        source_format in ("PNG", "GIF") and img.getcolors(GRAPHIC_MAX_COLOURS) is not None)
    if lossless:
        data = _save(img, "PNG", optimize=True)
        if len(data) <= MAX_ENCODED_BYTES:
            return data, "image/png"
        return _save(img, "WEBP", quality=WEBP_QUALITY, method=4), "image/webp"
    return _save(img, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True), "image/jpeg"


def _save(img: Any, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def receive_photo(data: str, claimed_mime_type: str | None, *, index: int, max_bytes: int,
                  limits: Limits | None = None) -> ImageUpload:
    """A photo as a request sends it (base64, a claimed type) checked and normalised; CPU-bound, so
    a server calls it in a worker thread."""
    from chatcore.media.images import decode_image

    raw = decode_image(data, claimed_mime_type, index=index, max_bytes=max_bytes)
    return normalise(raw.content, where=f"images[{index}]", limits=limits or Limits.configured()).upload


# What the Messages API takes without refusing or downscaling it (formats, and base64 under 5 MB).
MODEL_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")


def model_ready(content: bytes, limits: Limits | None = None) -> bytes:
    """``content`` as the model may be sent it: unchanged when it is already within the limits (every
    photo stored since normalisation existed), else normalised (a photo stored before: too large,
    too many pixels, or a format the API does not read). Only the header is read to decide."""
    limits = limits or Limits.configured()
    Image = _pillow()
    try:
        with _open(content, limits) as img:
            width, height = img.size
            fits = (img.format in MODEL_FORMATS and max(width, height) <= limits.max_edge
                    and width * height <= limits.max_pixels and len(content) <= MAX_ENCODED_BYTES)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        fits = False
    return content if fits else normalise(content, where="a stored photo", limits=limits).upload.content
