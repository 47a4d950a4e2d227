"""Real PNG images made with the standard library, for the demo and the tests."""

from __future__ import annotations

import base64
import math
import random
import struct
import zlib


def _png(width: int, height: int, pixel_rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in pixel_rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """An RGB PNG of noise: incompressible, so its size grows with width x height."""
    rng = random.Random(seed)
    return _png(width, height, [rng.randbytes(width * 3) for _ in range(height)])


def sunset_png(width: int = 200, height: int = 150, seed: int = 7) -> bytes:
    """A small picture (sky gradient, a sun, the sea) with film grain, about 70 KB."""
    rng = random.Random(seed)
    rows = []
    sun_x, sun_y, sun_r = width * 0.5, height * 0.55, height * 0.18
    horizon = int(height * 0.62)
    for y in range(height):
        row = bytearray()
        for x in range(width):
            if y < horizon:
                t = y / horizon
                r, g, b = 255, int(120 + 100 * t), int(60 + 40 * (1 - t))
                if math.hypot(x - sun_x, y - sun_y) < sun_r:
                    r, g, b = 255, 230, 90
            else:
                t = (y - horizon) / (height - horizon)
                r, g, b = int(40 + 60 * (1 - t)), int(60 + 50 * (1 - t)), int(120 + 60 * (1 - t))
            grain = rng.randint(-18, 18)
            row += bytes(max(0, min(255, c + grain)) for c in (r, g, b))
        rows.append(bytes(row))
    return _png(width, height, rows)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
