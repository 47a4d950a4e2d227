"""Count database round trips by what they cost: a proxy that delays the server's answers.

A round trip is a point where the client must wait for the server before it can go on. On a
local socket the server answers in microseconds, so a protocol trace cannot tell a pipelined
batch (sent without waiting) from statements sent one after another, each awaited. This proxy sits
between the application and Postgres and holds every chunk the server sends for ``delay``
seconds: a turn then takes ``round_trips x delay`` longer. A pipeline or ``executemany`` batch
costs one delay; each statement the client awaits costs one. The count is the slope of turn time
over delay, from pairs of turns at 20 ms and 120 ms (median of the pairs, rounded): the 100 ms
step is large against a turn's jitter, and a slope ignores any constant slowdown the proxy's
threads cause (with a single 0-vs-25 ms difference, an image turn read as 11 instead of 9).
"""

from __future__ import annotations

import queue
import socket
import threading
import time

from local.tcp import pump, shutdown



class LatencyProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.delay = 0.0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="latency-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(s)
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            self._pump_delayed(upstream, client)

    def _pump_delayed(self, src: socket.socket, dst: socket.socket) -> None:
        chunks: queue.Queue = queue.Queue()

        def read() -> None:
            try:
                while data := src.recv(65536):
                    chunks.put((time.monotonic() + self.delay, data))
            except OSError:
                pass
            chunks.put((0.0, b""))

        def write() -> None:
            try:
                while True:
                    due, data = chunks.get()
                    if not data:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                shutdown(src, dst)

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the proxy's."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(database_url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}"))

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


def count(turn, proxy: LatencyProxy, pairs: int = 4, low: float = 0.02, high: float = 0.12) -> dict:
    """Round trips of ``turn()`` (a callable running one turn): pairs of turns with the proxy holding
    the server's answers ``low`` and ``high`` seconds; each pair's estimate is
    ``(t_high - t_low) / (high - low)`` (a slope: a constant slowdown that appears whenever there is
    any latency cancels out). The pairs alternate their order (low-high, high-low, ...) so that a
    turn that gets slower as its session grows (an image turn re-reads every earlier photo) biases
    the estimates both ways; the count is their median, rounded."""
    import statistics

    estimates = []
    try:
        for i in range(pairs):
            times = {}
            for delay in ((low, high) if i % 2 == 0 else (high, low)):
                proxy.delay = delay
                t = time.perf_counter()
                turn()
                times[delay] = time.perf_counter() - t
            estimates.append((times[high] - times[low]) / (high - low))
    finally:
        proxy.delay = 0.0
    return {"round_trips": round(statistics.median(estimates)), "estimates": estimates,
            "delay_ms": (low * 1000, high * 1000)}
