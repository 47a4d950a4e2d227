"""Real images for tests, made with the standard library (zlib PNG encoder)."""

from __future__ import annotations

import base64
import random
import struct
import zlib


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A valid RGB PNG of noise: incompressible, so its size grows with width x height."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SMALL_PNG = png(8, 8, seed=1)          # ~250 bytes: stays inline
LARGE_PNG = png(160, 120, seed=2)      # ~58 KB: goes to S3
