"""Photos normalised at the door (``chatcore.media.photos``): every format a phone sends, upright, no
metadata, within the size limits, re-encoded as the API takes it; bad files refused with 422; photos
stored before normalisation made model-ready; and Pillow loaded only where a photo is handled."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from chatcore.errors import InvalidImage
from chatcore.media.photos import Limits, PixelBudget, model_ready, normalise, target_size

ROOT = Path(__file__).resolve().parents[2]
# normalise() and model_ready() apply the configured limits: the declared defaults here
pytestmark = pytest.mark.usefixtures("dummy_settings")


def exif_with_gps(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Apple"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", (33.0, 55.0, 12.0)
    return exif.tobytes()


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    return Image.merge("RGB", (img.getchannel(0), img.getchannel(0).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                               img.getchannel(0)))


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "HEIF"])
def test_every_phone_format_becomes_an_upright_photo_without_metadata(fmt):
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = encode(gradient(800, 600), fmt, exif=exif_with_gps(orientation=6))
    photo = normalise(data)
    img = opened(photo.upload.content)
    assert img.format in ("JPEG", "PNG", "WEBP") and photo.upload.mime_type == f"image/{img.format.lower()}"
    assert img.size == (600, 800) == (photo.width, photo.height)  # rotated by its EXIF orientation
    assert not dict(img.getexif()) and "exif" not in img.info and "icc_profile" not in img.info
    assert b"Apple" not in photo.upload.content


def test_a_12_megapixel_photo_is_downscaled_to_the_limits():
    photo = normalise(encode(gradient(4032, 3024), "JPEG", quality=90))
    assert (photo.width, photo.height) == target_size(4032, 3024, Limits.configured()) == (1238, 928)
    assert photo.width * photo.height <= 1_150_000 and max(photo.width, photo.height) <= 1568
    assert photo.upload.mime_type == "image/jpeg"


def test_the_edge_limit_applies_to_a_long_narrow_photo():
    assert target_size(6000, 500, Limits.configured()) == (1568, 130)
    assert target_size(1000, 800, Limits.configured()) == (1000, 800)  # small photos are not enlarged


def test_transparency_and_flat_graphics_stay_lossless():
    rgba = Image.new("RGBA", (300, 200), (10, 20, 30, 0))
    assert normalise(encode(rgba, "PNG")).upload.mime_type == "image/png"
    screenshot = Image.new("RGB", (400, 300), "white")
    screenshot.paste((0, 0, 0), (20, 20, 380, 40))
    assert normalise(encode(screenshot, "PNG")).upload.mime_type == "image/png"


@pytest.mark.parametrize("data, detail", [
    pytest.param(encode(gradient(200, 100), "JPEG")[:400], "could not be read", id="truncated"),
    pytest.param(b"\xff\xd8\xff" + b"\x00" * 500, "could not be read", id="header-only"),
    pytest.param(encode(Image.new("RGB", (10, 10)), "BMP"), "could not be read", id="bmp-not-accepted"),
])
def test_unreadable_files_are_422_invalid_image(data, detail):
    with pytest.raises(InvalidImage) as info:
        normalise(data, where="images[3]")
    assert info.value.status == 422 and detail in info.value.detail and info.value.extra["field"] == "images[3].data"


def _refused_from_header(data: bytes, **kwargs) -> InvalidImage:
    """The InvalidImage ``normalise`` raises for ``data``, checked to come before any decoding."""
    from PIL import ImageFile

    calls = []
    load = ImageFile.ImageFile.load
    try:
        ImageFile.ImageFile.load = lambda self: calls.append(self) or load(self)  # counts decodes, changes none
        with pytest.raises(InvalidImage) as info:
            normalise(data, where="images[2]", **kwargs)
    finally:
        ImageFile.ImageFile.load = load
    assert calls == [], "the photo was decoded before it was refused"
    assert info.value.status == 422 and info.value.extra["field"] == "images[2].data"
    return info.value


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    huge = encode(Image.new("1", (12_000, 12_000)), "PNG")  # 144 megapixels, a few KB of file
    assert len(huge) < 100_000
    assert "pixels" in _refused_from_header(huge).detail


@pytest.mark.parametrize("image", [
    pytest.param(Image.new("RGB", (9_000, 7_000), (30, 120, 200)), id="63-megapixel-png"),
    pytest.param(Image.new("1", (7_900, 7_900)), id="one-bit-7900x7900-png"),  # 7.6 KB, 62.4 MP
])
def test_a_png_over_the_per_photo_pixel_limit_is_422_naming_it(image):
    data = encode(image, "PNG", optimize=True)
    assert len(data) < 300_000
    problem = _refused_from_header(data)
    assert "IMAGE_MAX_DECODE_PIXELS" in problem.detail and "50,000,000" in problem.detail, problem.detail


def test_a_large_jpeg_counts_at_the_reduced_size_it_decodes_at():
    """A JPEG is decoded at 1/2, 1/4 or 1/8 of its sides (Image.draft) when that is still at least
    the target size: a 63 MP one decodes about 4 MP, within the limits, and comes out at the target."""
    big = encode(gradient(9_000, 7_000), "JPEG", quality=70)
    budget = PixelBudget(10_000_000)
    photo = normalise(big, budget=budget)
    assert (photo.width, photo.height) == target_size(9_000, 7_000, Limits.configured())
    decoded = budget.limit - budget.left
    assert 1_150_000 <= decoded <= 9_000 * 7_000 // 16, decoded  # 1/4 of each side at most
    # a 12 MP phone photo decodes at half its sides: 3 MP, so twenty fit one turn's default budget
    phone = PixelBudget(64_000_000)
    normalise(encode(gradient(4032, 3024), "JPEG", quality=85), budget=phone)
    assert phone.limit - phone.left == 2016 * 1512


def test_a_turn_budget_of_decoded_pixels_refuses_the_photo_past_it_from_its_header():
    budget = PixelBudget(30_000_000)
    for _ in range(2):  # 2 x 12.5 MP
        normalise(encode(Image.new("RGB", (5_000, 2_500), (200, 10, 10)), "PNG"), budget=budget)
    problem = _refused_from_header(encode(Image.new("RGB", (5_000, 2_500), (10, 200, 10)), "PNG"), budget=budget)
    assert "IMAGE_MAX_DECODE_PIXELS_PER_TURN" in problem.detail and "30,000,000" in problem.detail, problem.detail
    assert budget.left == 5_000_000  # the refused photo took nothing


def test_a_turn_budget_of_file_bytes_refuses_the_photo_past_it():
    photo = encode(gradient(2000, 1500), "JPEG", quality=95)
    budget = PixelBudget(1_000_000_000, file_bytes=2 * len(photo) + 10)
    normalise(photo, budget=budget)
    normalise(photo, budget=budget)
    problem = _refused_from_header(photo, budget=budget)
    assert "IMAGE_MAX_BYTES_PER_TURN" in problem.detail, problem.detail
    assert budget.bytes_left == 10


def test_normal_photos_still_fit_the_default_budgets_and_come_out_the_same():
    budget = PixelBudget.configured()
    for fmt in ("JPEG", "PNG", "WEBP"):
        photo = normalise(encode(gradient(3000, 2000), fmt, exif=exif_with_gps(orientation=8)), budget=budget)
        assert (photo.width, photo.height) == target_size(2000, 3000, Limits.configured())  # turned upright
    one_bit = normalise(encode(Image.new("1", (2000, 1000), 1), "PNG"), budget=budget)
    assert opened(one_bit.upload.content).mode == "RGB" and (one_bit.width, one_bit.height) == (1516, 758)


def test_a_photo_stored_before_normalisation_is_made_model_ready_and_a_normalised_one_is_left_alone():
    old = encode(gradient(3000, 2000), "PNG")  # stored raw, before photos were normalised
    ready = model_ready(old)
    assert ready != old and max(opened(ready).size) <= 1568
    new = normalise(encode(gradient(3000, 2000), "JPEG")).upload.content
    assert model_ready(new) is new


def test_pillow_is_loaded_only_where_a_photo_is_handled():
    """The API function (no photos) does not import Pillow; the chat function imports it lazily."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "core"),
                                                        str(ROOT / "functions" / "api"),
                                                        str(ROOT / "functions" / "chat")]),
           "DATABASE_URL": "postgresql://never@127.0.0.1:1/x", "MEDIA_BUCKET": "never"}
    code = ("import sys, api_app, chat_api; "
            "print(sorted(m for m in sys.modules if m == 'PIL' or m.startswith('PIL.') or m == 'pi_heif'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
