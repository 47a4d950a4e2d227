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


@pytest.fixture()
def s3_behind_a_proxy(stack, monkeypatch):
    """The process's S3 client pointed at a proxy in front of moto (S3_TIMEOUT=2), restored after."""
    from urllib.parse import urlsplit

    from chatcore.config import get_settings
    from chatcore.media import s3
    from tests.support.tcp_proxy import StallingProxy

    moto = urlsplit(stack.env["AWS_ENDPOINT_URL_S3"])
    proxy = StallingProxy(moto.hostname, moto.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setenv("S3_TIMEOUT", "2")
    get_settings.cache_clear()
    s3.forget_client()
    yield proxy
    proxy.close()
    monkeypatch.undo()
    get_settings.cache_clear()
    s3.forget_client()
