"""Images for tests (real PNGs made by local.sample_images)."""

from local.sample_images import b64, noise_png

SMALL_PNG = noise_png(8, 8, seed=1)        # ~250 bytes: stays inline
LARGE_PNG = noise_png(160, 120, seed=2)    # ~58 KB: goes to S3

__all__ = ["SMALL_PNG", "LARGE_PNG", "b64", "noise_png"]
