"""A caller of the served API: its own ``sub`` and an HTTP client carrying its JWT."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class User:
    """A caller with its own ``sub`` and an HTTP client carrying its (unsigned, dev) JWT."""

    def __init__(self, base_url: str, sub: str | None = None):
        import httpx

        from chatcore.web.identity import unsigned_jwt

        self.sub = sub or f"user-{uuid.uuid4()}"
        self.headers = {"Authorization": f"Bearer {unsigned_jwt({'sub': self.sub})}"}
        self.client = httpx.Client(base_url=base_url, headers=self.headers, timeout=60)

    def new_session(self, agent: str = "assistant") -> str:
        r = self.client.post("/sessions", json={"agent": agent})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def turn(self, session_id: str, **body) -> tuple[httpx.Response, list[dict]]:
        from chatcore.wire import sse

        r = self.client.post(f"/sessions/{session_id}/turns", json=body)
        events = sse.parse(r.text) if r.headers.get("content-type", "").startswith("text/event-stream") else []
        return r, events
