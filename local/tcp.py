"""Pieces of the TCP proxies the benchmark and the fault tests put in front of a dependency."""

from __future__ import annotations

import socket


def shutdown(*sockets: socket.socket) -> None:
    """Close both directions of a proxied connection (either side may be gone already)."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either side closes, then close both."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        shutdown(src, dst)
