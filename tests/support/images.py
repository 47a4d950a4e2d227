"""Images for tests (real PNGs made by local.sample_images), and what the app stores for them.

Photos are normalised on arrival (chatcore.media.photos), so what is stored, sent to the model and
served back is ``normalised(original)``, never the original's bytes; and a phone photo's metadata
(``exif_with_gps``) is gone from it (``assert_clean``).
"""

import io

from PIL import Image

from chatcore.config import Settings
from chatcore.media.photos import Limits, normalise
from local.sample_images import b64, noise_png

LIMITS = Limits.of(Settings())  # the declared defaults, which the test stack runs with

GPS_IFD = 0x8825

SMALL_PNG = noise_png(8, 8, seed=1)        # ~270 bytes, few colours: stays a PNG, and inline
LARGE_PNG = noise_png(400, 300, seed=2)    # ~360 KB of noise: a photo, stored as a ~85 KB JPEG in S3


def normalised(data: bytes) -> bytes:
    """The bytes the app stores (and the model and the app get) for the photo ``data``."""
    return normalise(data, limits=LIMITS).upload.content


SMALL_STORED = normalised(SMALL_PNG)
LARGE_STORED = normalised(LARGE_PNG)


def exif_with_gps() -> bytes:
    """A phone photo's EXIF: orientation, camera, time and a GPS position."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 17 Pro"
    exif[0x0132] = "2026:11:30 09:15:00"
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 55.0, 12.0), "E", (18.0, 25.0, 6.0)
    return exif.tobytes()


def assert_clean(data: bytes) -> Image.Image:
    """No EXIF (no GPS, camera, time), no XMP, no ICC, no comment; returns the opened image."""
    img = Image.open(io.BytesIO(data))
    assert not dict(img.getexif()) and not img.getexif().get_ifd(GPS_IFD), dict(img.getexif())
    assert not {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment"} & set(img.info), img.info.keys()
    assert b"Apple" not in data and b"iPhone" not in data
    return img


__all__ = ["SMALL_PNG", "LARGE_PNG", "SMALL_STORED", "LARGE_STORED", "GPS_IFD", "normalised", "b64", "noise_png",
           "exif_with_gps", "assert_clean"]
