"""Fixtures that take a dependency of the served API away and give it back: Postgres down, S3 behind
a proxy that can stall. Each restores the process's database pool or S3 client afterwards."""

from __future__ import annotations

import pytest


@pytest.fixture()
def postgres_down(monkeypatch):
    """The process's database pool pointed at a port where nothing listens (Postgres down), then back."""
    from chatcore import db
    from chatcore.config import get_settings
    from local.ports import free_port

    real = db.connect_params
    dead = free_port()
    monkeypatch.setattr(db, "connect_params", lambda: (f"postgresql://postgres@127.0.0.1:{dead}/x", db.CONNECT_KWARGS))
    monkeypatch.setenv("DB_POOL_TIMEOUT", "1")
    get_settings.cache_clear()
    db.close_pool()
    yield
    monkeypatch.setattr(db, "connect_params", real)
    monkeypatch.undo()
    get_settings.cache_clear()
    db.close_pool()


def client_behind_a_proxy(stack, monkeypatch, *, endpoint_var: str, timeout_var: str, timeout: str, forget):
    """A generator for a fixture: the process's client of one AWS service (``forget`` drops it) pointed at
    a StallingProxy in front of moto (``endpoint_var``), with ``timeout_var`` set; restored after."""
    from urllib.parse import urlsplit

    from chatcore.config import get_settings
    from tests.support.tcp_proxy import StallingProxy

    moto = urlsplit(stack.env[endpoint_var])
    proxy = StallingProxy(moto.hostname, moto.port)
    monkeypatch.setenv(endpoint_var, proxy.url)
    monkeypatch.setenv(timeout_var, timeout)
    get_settings.cache_clear()
    forget()
    yield proxy
    proxy.close()
    monkeypatch.undo()
    get_settings.cache_clear()
    forget()


@pytest.fixture()
def s3_behind_a_proxy(stack, monkeypatch):
    """The process's S3 client pointed at a proxy in front of moto (S3_TIMEOUT=2), restored after."""
    from chatcore.media import s3

    yield from client_behind_a_proxy(stack, monkeypatch, endpoint_var="AWS_ENDPOINT_URL_S3", timeout_var="S3_TIMEOUT",
                                     timeout="2", forget=s3.forget_client)
