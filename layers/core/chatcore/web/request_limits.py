"""The generous per-user request limit of the API function's routes (``API_REQUESTS_PER_MINUTE``,
300 by default): a script looping on any route is refused with 429 ``rate-limited``
(``requests-per-minute``) and ``Retry-After``, without a write per request.

Counted in the memory of the instance (a fixed window of a minute per user): nothing is stored, so
it costs no round trip; with several instances, a user's requests spread over them may each reach
the limit (a loop's requests mostly reach the same warm instance). The stage's own throttling is
the overall bound; the turn route's limits are the plan's (``chatcore.money.plans``), counted in
the database.
"""

from __future__ import annotations

import math
import threading
import time

from fastapi import Request

from chatcore.config import get_settings
from chatcore.errors import RateLimited
from chatcore.observability import record_limit_refusal
from chatcore.web.identity import caller

WINDOW_SECONDS = 60
# The most users an instance remembers: past it, windows that ended are dropped first, then the oldest.
MAX_USERS = 20_000


class RequestCounter:
    """Requests per user in the current minute's window of each (thread-safe)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, sub: str, limit: int) -> None:
        """Count a request of ``sub``; RateLimited once ``limit`` requests were counted in its window."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.get(sub, (now, 0))
            if now - start >= WINDOW_SECONDS:
                start, count = now, 0
            if count >= limit:
                reset = max(1, math.ceil(start + WINDOW_SECONDS - now))
                refusal = RateLimited(f"more than {limit} requests a minute; try again in {reset} s",
                                      retry_after=reset, limit="requests-per-minute", limit_value=limit)
                refusal.headers = {"RateLimit-Policy": f'"requests-per-minute";q={limit};w={WINDOW_SECONDS}',
                                   "RateLimit": f'"requests-per-minute";r=0;t={reset}'}
                raise refusal
            self._windows[sub] = (start, count + 1)
            if len(self._windows) > MAX_USERS:
                self._forget(now)

    def _forget(self, now: float) -> None:
        ended = [sub for sub, (start, _) in self._windows.items() if now - start >= WINDOW_SECONDS]
        for sub in ended or list(self._windows)[:len(self._windows) - MAX_USERS]:
            del self._windows[sub]


_counter = RequestCounter()


async def limited_caller(request: Request) -> str:
    """The caller's ``sub`` (``web.identity.caller``), counted against API_REQUESTS_PER_MINUTE."""
    sub = await caller(request)
    limit = get_settings().api_requests_per_minute
    if limit:
        try:
            _counter.hit(sub, limit)
        except RateLimited:
            record_limit_refusal(sub, "requests-per-minute")
            raise
    return sub
