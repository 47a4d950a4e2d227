"""Server-sent events: one frame per event, media bytes never sent to the phone."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

MEDIA_KEYS = {"content", "url", "filepath"}


def _strip_media(value: Any) -> Any:
    """Drop base64 content and transient URLs of media objects; keep their ids and types."""
    if isinstance(value, dict):
        is_media = "mime_type" in value or "media_reference" in value or "format" in value
        out = {}
        for k, v in value.items():
            if is_media and k in MEDIA_KEYS and isinstance(v, (str, bytes)):
                continue
            if k == "media_reference" and isinstance(v, dict):
                out[k] = {rk: rv for rk, rv in v.items() if rk not in ("url", "bucket", "storage_key")}
                continue
            out[k] = _strip_media(v)
        return out
    if isinstance(value, list):
        return [_strip_media(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def frame(seq: int, event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: ``id``, ``event`` and a single-line JSON ``data``."""
    payload = json.dumps(_strip_media(data), default=_default, separators=(",", ":"))
    return f"id: {seq}\nevent: {event}\ndata: {payload}\n\n".encode()


def parse(stream_text: str) -> list[dict[str, Any]]:
    """Parse SSE text into ``[{"id", "event", "data"}]`` (for clients, the demo and tests)."""
    events = []
    for block in stream_text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        item: dict[str, Any] = {}
        data_lines = []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            key, _, val = line.partition(":")
            val = val[1:] if val.startswith(" ") else val
            if key == "data":
                data_lines.append(val)
            elif key in ("id", "event"):
                item[key] = val
        if data_lines:
            item["data"] = json.loads("\n".join(data_lines))
        if item:
            events.append(item)
    return events
