"""Images for tests (real PNGs made by local.sample_images), and what the app stores for them.

Photos are normalised on arrival (chatcore.media.photos), so what is stored, sent to the model and
served back is ``normalised(original)``, never the original's bytes.
"""

from chatcore.config import Settings
from chatcore.media.photos import Limits, normalise
from local.sample_images import b64, noise_png

LIMITS = Limits.of(Settings())  # the declared defaults, which the test stack runs with

SMALL_PNG = noise_png(8, 8, seed=1)        # ~270 bytes, few colours: stays a PNG, and inline
LARGE_PNG = noise_png(400, 300, seed=2)    # ~360 KB of noise: a photo, stored as a ~85 KB JPEG in S3


def normalised(data: bytes) -> bytes:
    """The bytes the app stores (and the model and the app get) for the photo ``data``."""
    return normalise(data, limits=LIMITS).upload.content


SMALL_STORED = normalised(SMALL_PNG)
LARGE_STORED = normalised(LARGE_PNG)

__all__ = ["SMALL_PNG", "LARGE_PNG", "SMALL_STORED", "LARGE_STORED", "normalised", "b64", "noise_png"]
