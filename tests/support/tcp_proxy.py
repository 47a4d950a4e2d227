"""TCP proxies the tests put in front of a server: ``StallingProxy`` stalls a dependency (moto's S3):
while stalled, it accepts connections and forwards nothing, as a hung S3 endpoint does.
``CuttingProxy`` drops a connection in the middle of a response, as a phone losing its network does."""

from __future__ import annotations

import socket
import threading

from local.ports import free_port
from local.tcp import pump, shutdown


class _Proxy:
    """A listener on a free local port in front of ``host:port``; ``_accept`` handles its connections
    (a thread of its own), and ``close`` closes it and every socket it opened."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


class StallingProxy(_Proxy):
    def __init__(self, host: str, port: int):
        self.stalled = threading.Event()
        self.closed = threading.Event()
        super().__init__(host, port)

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self.stalled.is_set():
                continue  # held open, never answered
            upstream = socket.create_connection(self.target)
            self._sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        super().close()


class CuttingProxy(_Proxy):
    """Forwards every connection to ``host:port`` both ways, but cuts a connection (both directions
    closed, nothing more forwarded) as soon as the server's bytes on it contain ``trigger``, after
    passing on the read that held it. Connections whose responses never contain it are untouched."""

    def __init__(self, host: str, port: int, trigger: bytes):
        self.trigger = trigger
        self.cuts = 0
        super().__init__(host, port)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._downstream, args=(upstream, client), daemon=True).start()

    def _downstream(self, src: socket.socket, dst: socket.socket) -> None:
        tail = b""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if self.trigger in tail + data:
                    self.cuts += 1
                    return
                tail = (tail + data)[-len(self.trigger):]
        except OSError:
            pass
        finally:
            shutdown(src, dst)


class OutageProxy(_Proxy):
    """Forwards every connection to ``host:port`` (Postgres) until ``down()``: then every open
    connection is cut and every new one closed as soon as it is accepted (a database that is gone, as in
    a failover), until ``up()``."""

    def __init__(self, host: str, port: int):
        self.is_down = threading.Event()
        self._open: list[socket.socket] = []
        self._guard = threading.Lock()
        super().__init__(host, port)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.is_down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._guard:
                self._sockets += [client, upstream]
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    def down(self) -> None:
        self.is_down.set()
        with self._guard:
            cut, self._open = self._open, []
        for s in cut:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def up(self) -> None:
        self.is_down.clear()
