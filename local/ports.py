"""A free TCP port on the loopback interface, for the local servers (Postgres, moto, the stand-in,
the API) and the tests and benchmarks that start them."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
