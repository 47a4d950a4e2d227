"""Reading a turn's event stream as a phone does: event by event as the lines arrive, stopping when
it wants to (``read_events``), or to its end in a thread of its own (``TurnInThread``)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import httpx

from chatcore.wire import sse

if TYPE_CHECKING:
    from tests.support.users import User

TERMINAL = {"TurnCompleted", "TurnFailed", "TurnCancelled"}


def raw_frames(text: str) -> list[str]:
    """The SSE frames of a stream's text as sent, heartbeats left out (to compare bytes)."""
    return [block + "\n\n" for block in text.split("\n\n") if block and not block.startswith(":")]


def frames(lines) -> list[dict]:
    """Parse SSE lines as they arrive (one event per blank-line-terminated block)."""
    return sse.parse("\n".join(lines) + "\n\n")


def read_events(source, *, stop_after=None, arrivals: list | None = None) -> list[dict]:
    """Read the events of a streaming response (or of its ``iter_lines()``, to read on later); stop
    once ``stop_after(events)`` (leaving the ``with`` block then drops the connection)."""
    events, block = [], []
    for line in (source.iter_lines() if isinstance(source, httpx.Response) else source):
        if arrivals is not None:
            arrivals.append(time.monotonic())
        if line:
            block.append(line)
            continue
        if block and not all(part.startswith(":") for part in block):
            events.extend(frames(block))
            if events[-1]["event"] in TERMINAL or (stop_after and stop_after(events)):
                return events
        block = []
    return events


class TurnInThread:
    """A turn streamed to its end by a thread of its own (a phone that is still reading): ``run_id``
    once the response has started, ``events`` and the lines' ``arrivals`` once it has ended."""

    def __init__(self, user: User, url: str, session_id: str, message: str):
        self.run_id: str | None = None
        self.events: list[dict] = []
        self.arrivals: list[float] = []
        started = threading.Event()

        def run() -> None:
            with httpx.Client(base_url=url, headers=user.headers, timeout=60) as c:
                with c.stream("POST", f"/sessions/{session_id}/turns", json={"message": message}) as r:
                    self.run_id = r.headers["x-run-id"]
                    self.arrivals.append(time.monotonic())
                    started.set()
                    self.events = read_events(r, arrivals=self.arrivals)

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert started.wait(30), "the turn did not start"

    def join(self) -> list[dict]:
        self.thread.join(60)
        return self.events
