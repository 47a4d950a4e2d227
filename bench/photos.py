"""13. Photos: the CPU time and peak memory of the photo work of the worst turns the limits allow
(``chatcore.media.photos``: decoded pixels per photo, IMAGE_MAX_DECODE_PIXELS, and per turn,
IMAGE_MAX_DECODE_PIXELS_PER_TURN, and bytes per turn, IMAGE_MAX_BYTES_PER_TURN), and of the turns that used to be the worst (issue 28).

Each turn's photos are normalised in a fresh process, one after the other with one pixel budget,
as the turn route does (``web.routes.turn_stream._photos``): its CPU time (user + system) from the
first photo to the last (or to the refusal), and its peak resident memory (VmHWM: the whole
process, Python and Pillow included; the photos' own bytes are read before the clock starts). The
photos are made by the parent and handed over as files. CPU time is what a busy machine changes
least; the figures are of this machine (the MACHINE table).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import say
from bench.stats import table

ROOT = Path(__file__).resolve().parents[1]
MAX_CPU_S = 3.0
MAX_PEAK_MB = 600

_CHILD = r"""
import json, resource, sys, time
from chatcore.errors import InvalidImage
from chatcore.media.photos import PixelBudget, normalise
files = json.loads(sys.argv[1])
photos = [open(f, "rb").read() for f in files]
import PIL.Image, pillow_heif  # imported before the clock, as a warm function has them
budget = PixelBudget.configured()
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
refused, accepted = None, 0
for i, data in enumerate(photos):
    try:
        normalise(data, where=f"images[{i}]", budget=budget)
    except InvalidImage as e:
        refused = e.detail
        break
    accepted += 1
after = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))  # kB, this process
print(json.dumps({"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                  "wall_s": time.perf_counter() - started, "peak_mb": hwm / 1024,
                  "decoded": budget.limit - budget.left, "refused": refused, "accepted": accepted}))
"""


def _png(img: Any, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **options)
    return out.getvalue()


def _jpeg(img: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _noise(width: int, height: int, sigma: float) -> Any:
    """An RGB image of grey noise over a gradient: as hard to compress as ``sigma`` makes it."""
    from PIL import Image

    grey = Image.effect_noise((width, height), sigma)
    ramp = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (grey, ramp, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def turns() -> dict[str, tuple[str, list[bytes]]]:
    """Each turn: how its photos arrive, and the photos."""
    from PIL import Image

    say("bench: photos, making the photos")
    flat63 = _png(Image.new("RGB", (9_000, 7_000), (40, 90, 160)), optimize=True)
    phone = _jpeg(_noise(4032, 3024, 20))  # a 12 MP phone photo of ~3.7 MB
    noisy = _png(_noise(4_000, 3_000, 12))  # 12 MP of hard-to-compress PNG, ~16 MB (an upload takes 25)
    dense = _jpeg(_noise(6_000, 4_000, 60))  # 24 MP of noise at quality 85: a JPEG as costly as its bytes
    return {
        "ten 63 MP flat PNGs (issue 28: 16.8 s before)": ("one 3.5 MB body", [flat63] * 10),
        "a one-bit 7900x7900 PNG (1.9 s before)": ("7.6 KB body", [_png(Image.new("1", (7_900, 7_900)), optimize=True)]),
        "flat PNGs at the limits: 50 MP + 14 MP": ("one body", [
            _png(Image.new("RGB", (8_000, 6_250), (200, 30, 30)), optimize=True),
            _png(Image.new("RGB", (4_000, 3_500), (30, 200, 30)), optimize=True)]),
        "one-bit PNGs at the limits: 50 MP + 14 MP": ("one body", [
            _png(Image.new("1", (8_000, 6_250)), optimize=True), _png(Image.new("1", (4_000, 3_500)), optimize=True)]),
        "noisy 12 MP PNGs up to the turn's pixels": ("uploads", [noisy] * 5),
        "dense 24 MP JPEGs up to the turn's bytes": ("uploads", [dense] * 20),
        "twenty 12 MP phone JPEGs (a normal album)": ("uploads", [phone] * 20),
    }


def _measure(photos: list[bytes]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, data in enumerate(photos):
            path = Path(tmp) / f"{i}.img"
            path.write_bytes(data)
            files.append(str(path))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT)])}
        env.pop("IMAGE_MAX_DECODE_PIXELS", None)
        env.pop("IMAGE_MAX_DECODE_PIXELS_PER_TURN", None)
        env.pop("IMAGE_MAX_BYTES_PER_TURN", None)
        env.setdefault("DATABASE_URL", "postgresql://never@127.0.0.1:1/x")
        env.setdefault("MEDIA_BUCKET", "never")
        p = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(files)], env=env, capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-2000:])
        return json.loads(p.stdout.strip().splitlines()[-1])


def run() -> dict[str, Any]:
    results = {}
    for name, (how, photos) in turns().items():
        say(f"bench: photos, {name}")
        results[name] = {"how": how, "photos": len(photos), "bytes": sum(map(len, photos)), **_measure(photos)}
    return results


def worst_allowed(res: dict[str, Any]) -> dict[str, Any]:
    """The dearest turn: the photo work the limits let run (to the end, or to the refusal)."""
    return max(res.values(), key=lambda r: r["cpu_s"])


def report(res: dict[str, Any]) -> str:
    rows = []
    for name, r in res.items():
        limit = next((n for n in ("IMAGE_MAX_DECODE_PIXELS_PER_TURN", "IMAGE_MAX_BYTES_PER_TURN",
                                  "IMAGE_MAX_DECODE_PIXELS") if n in (r["refused"] or "")), "")
        outcome = "accepted" if r["refused"] is None else f"422: {limit} (after {r['accepted']})"
        rows.append([name, f"{r['photos']} ({r['bytes'] / 1e6:.1f} MB, {r['how']})", f"{r['decoded'] / 1e6:.1f} MP",
                     f"{r['cpu_s']:.2f} s", f"{r['wall_s']:.2f} s", f"{r['peak_mb']:.0f} MB", outcome])
    lines = ["", "13. PHOTOS (a turn's photo work in a fresh process, photos one after the other with one pixel "
                 "budget, as the turn route does; defaults: 50 MP per photo, 64 MP and 80 MiB per turn)",
             table(["turn", "photos", "decoded", "CPU", "wall", "peak RSS", "outcome"], rows),
             "  decoded: the pixels decoded (a JPEG at its draft scale); peak RSS: the whole process."]
    return "\n".join(lines)
