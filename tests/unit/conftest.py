"""The unit tier is pure: no Postgres, no S3, no model, no network.

Two guards keep it so. ``stack`` is overridden here, so a unit test that asks for it (directly, or
through ``db_conn``, ``user``, ``standin`` or ``server_url``) fails instead of starting the local
stack. And a test's own thread may not open a TCP connection (unix sockets, as asyncio's self-pipe,
are fine; threads other than the test's are left alone, since in a full run the integration tier's
servers are still up in this process).
"""

from __future__ import annotations

import socket
import threading

import pytest


@pytest.fixture(scope="session")
def stack():
    pytest.fail("a unit test asked for the local stack (Postgres, S3, the model): it belongs in tests/integration")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and threading.current_thread() is threading.main_thread():
            raise AssertionError(f"a unit test opened a network connection to {address!r}: it belongs in "
                                 "tests/integration")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))


@pytest.fixture()
def dummy_settings(monkeypatch):
    """Settings that can be read but name nothing real (code under test reads ``get_settings()``); the
    environment and the cached settings are restored afterwards. Yields ``monkeypatch`` to edit more."""
    from chatcore.config import get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://unit-tests@127.0.0.1:1/never-connected")
    monkeypatch.setenv("MEDIA_BUCKET", "unit-tests-never-uploaded")
    for name in ("PROMPT_CACHE_TTL", "AWS_LAMBDA_FUNCTION_NAME", "DB_SECRET_ARN", "DB_IAM_AUTH",
                 "ANTHROPIC_API_KEY_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
