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
# A JPEG decodes at 1/8 of its sides at the smallest: it may declare up to 64 times the decoded-pixel limit.
JPEG_DRAFT_AREA = 64


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


def header_size(content: bytes) -> tuple[int, int] | None:
    """The pixel size an image's header declares (``content`` may be its first bytes only: nothing is
    decoded), or None when Pillow cannot read it there."""
    Image = _pillow()
    try:
        with Image.open(io.BytesIO(content)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on a header it cannot read
        return None


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
    # (Limits.max_decode_pixels, on the pixels a decode would produce) is checked right after the
    # header is read. A JPEG may declare more: it is decoded at a fraction of its size (``draft``).
    Image.MAX_IMAGE_PIXELS = limits.max_decode_pixels * JPEG_DRAFT_AREA
    return Image.open(io.BytesIO(content), **options)


class PixelBudget:
    """What a turn's photos may decode, all together: pixels (``IMAGE_MAX_DECODE_PIXELS_PER_TURN``)
    and file bytes (``IMAGE_MAX_BYTES_PER_TURN``: a JPEG's entropy decoding costs by its bytes, whatever
    scale it is decoded at). Each photo takes its share from its header, before it is decoded; the
    photo that would go past either is refused (422 ``invalid-image``) and nothing more is decoded."""

    def __init__(self, pixels: int, file_bytes: int | None = None) -> None:
        self.limit, self.left = pixels, pixels
        self.bytes_limit = self.bytes_left = file_bytes if file_bytes is not None else 1 << 62

    @classmethod
    def configured(cls) -> PixelBudget:
        s = get_settings()
        return cls(s.image_max_decode_pixels_per_turn, s.image_max_bytes_per_turn)

    def take(self, pixels: int, where: str, file_bytes: int = 0) -> None:
        if pixels > self.left:
            raise InvalidImage(
                f"{where} would decode {pixels:,} pixels, and the turn's photos before it {self.limit - self.left:,}: "
                f"a turn's photos may decode at most {self.limit:,} pixels together "
                "(IMAGE_MAX_DECODE_PIXELS_PER_TURN); send fewer or smaller photos", field=f"{where}.data")
        if file_bytes > self.bytes_left:
            raise InvalidImage(
                f"{where} is {file_bytes:,} bytes, and the turn's photos before it {self.bytes_limit - self.bytes_left:,}: "
                f"a turn's photos may be at most {self.bytes_limit:,} bytes together (IMAGE_MAX_BYTES_PER_TURN); "
                "send fewer or smaller photos", field=f"{where}.data")
        self.left -= pixels
        self.bytes_left -= file_bytes


def decoded_size(img: Any, limits: Limits) -> tuple[int, int]:
    """The size ``img`` (opened, not decoded) will decode at: a JPEG at the smallest of its DCT
    scales (1/2, 1/4, 1/8) still at least the target size (``Image.draft``, which sets it); any other
    format at its full size."""
    if img.format == "JPEG":
        img.draft("RGB", target_size(*img.size, limits))
    return img.size


# Orientation (EXIF 0x0112) -> the transposition that makes the photo upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
            7: "TRANSVERSE", 8: "ROTATE_90"}


def normalise(content: bytes, *, where: str = "image", limits: Limits | None = None,
              budget: PixelBudget | None = None) -> Photo:
    """The normalised photo of ``content`` (see the module) within ``limits`` (default: the configured
    ones) and the turn's ``budget`` of decoded pixels; InvalidImage when it cannot be read or is over
    a limit (refused from its header, before anything is decoded)."""
    limits = limits or Limits.configured()
    Image = _pillow()

    try:
        img = _open(content, limits, formats=READABLE_FORMATS)
        width, height = img.size
        if width < 1 or height < 1:
            raise InvalidImage(f"{where} is {width}x{height} pixels", field=f"{where}.data")
        source_format = img.format
        decoded = math.prod(decoded_size(img, limits))
        if decoded > limits.max_decode_pixels:
            raise InvalidImage(
                f"{where} is {width}x{height} pixels and would decode {decoded:,}; at most "
                f"{limits.max_decode_pixels:,} decoded pixels are accepted per photo (IMAGE_MAX_DECODE_PIXELS)",
                field=f"{where}.data")
        if budget is not None:
            budget.take(decoded, where, len(content))
        img.load()  # the decode: a truncated or corrupt file fails here, not later
        orientation = img.getexif().get(0x0112)
        icc = img.info.get("icc_profile")
        # downscaled first, so every step after it (turning, colour, re-encoding) works on the small image
        img = _resizable(img, Image)
        w, h = target_size(*img.size, limits)
        if (w, h) != img.size:
            img = img.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if orientation in _UPRIGHT:
            img = img.transpose(getattr(Image.Transpose, _UPRIGHT[orientation]))
        img = _to_srgb(img, icc)
        img = _plain_pixels(img, Image)
        data, mime = _encode(img, source_format)
    except InvalidImage:
        raise
    except Image.DecompressionBombError as e:
        raise InvalidImage(f"{where} declares more pixels than are accepted ({limits.max_decode_pixels:,}, "
                           "IMAGE_MAX_DECODE_PIXELS); it was not decoded", field=f"{where}.data") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InvalidImage(f"{where} could not be read as an image ({_reason(e)})", field=f"{where}.data") from e
    return Photo(ImageUpload(content=data, mime_type=mime), img.width, img.height)


def _resizable(img: Any, Image: Any) -> Any:
    """``img`` in a mode Pillow resizes with a real filter (L, LA, RGB, RGBA): one-bit images become
    grey (one byte a pixel, not three), palettes RGB(A); anything else RGB, as before."""
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if img.mode == "1":
        return img.convert("L")
    has_alpha = img.mode in ("PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
    return img.convert("RGBA" if has_alpha else "RGB")


def _reason(e: Exception) -> str:
    text = str(e).split("\n")[0][:200]
    return f"{e.__class__.__name__}: {text}" if text else e.__class__.__name__


def _to_srgb(img: Any, icc: bytes | None) -> Any:
    """Pixels in sRGB (phones shoot in Display P3; ``icc``: the photo's profile); the profile itself is
    then dropped."""
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
    # baseline, not progressive: a progressive encoding took 3-4x the CPU (4.8 vs 1.5 ms for a 260x260
    # photo, 98 vs 27 ms for a noisy 1568x1176 one) on the turn's path, for 2-3 % fewer bytes
    return _save(img, "JPEG", quality=JPEG_QUALITY, optimize=True), "image/jpeg"


def _save(img: Any, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def receive_photo(data: str, claimed_mime_type: str | None, *, index: int, max_bytes: int,
                  limits: Limits | None = None, budget: PixelBudget | None = None) -> ImageUpload:
    """A photo as a request sends it (base64, a claimed type) checked and normalised; CPU-bound, so
    a server calls it in a worker thread."""
    from chatcore.media.images import decode_image

    raw = decode_image(data, claimed_mime_type, index=index, max_bytes=max_bytes)
    return normalise(raw.content, where=f"images[{index}]", limits=limits or Limits.configured(),
                     budget=budget).upload


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
