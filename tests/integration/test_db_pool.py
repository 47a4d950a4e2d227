"""The process pool holds no connection it does not use: none until a request needs one, and one left
unused for DB_POOL_MAX_IDLE seconds is closed (so a warm sandbox between bursts holds no backend)."""

from __future__ import annotations

import time
import uuid

import pytest

from chatcore import config, db
from tests.support import pg


def _backends(url: str, name: str) -> int:
    with pg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()[0]


@pytest.fixture()
def named_pool(stack, monkeypatch):
    """The process pool, its connections named so the server can count them; straight to the server
    (behind a transaction pooler the server's connections are the pooler's, not the process's)."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    base = stack.env["DATABASE_URL"]
    if stack.postgres is not None:
        base = stack.postgres.direct_url(base.rsplit("/", 1)[1])
    monkeypatch.setenv("DATABASE_URL", f"{base}{'&' if '?' in base else '?'}application_name={name}")
    monkeypatch.setenv("DB_POOL_MAX", "1")  # Lambda's
    monkeypatch.setenv("DB_POOL_MAX_IDLE", "0.5")
    db.close_pool()
    config.get_settings.cache_clear()
    yield base, name
    db.close_pool()
    monkeypatch.undo()
    config.get_settings.cache_clear()


def test_the_pool_opens_no_connection_before_a_request_needs_one(named_pool):
    base, name = named_pool
    pool = db.pool()
    time.sleep(0.3)  # a pool that fills min_size does it in its worker at once
    assert pool.get_stats()["pool_size"] == 0 and _backends(base, name) == 0
    with db.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1
    assert _backends(base, name) == 1


def test_a_connection_left_unused_is_closed_and_the_next_request_opens_another(named_pool):
    base, name = named_pool
    with db.connection() as conn:
        first = conn.info.backend_pid
    assert _backends(base, name) == 1
    deadline = time.monotonic() + 10
    while _backends(base, name) and time.monotonic() < deadline:
        time.sleep(0.1)
    # unused for a whole DB_POOL_MAX_IDLE period (checked every period): closed, on the server too
    assert _backends(base, name) == 0 and db.pool().get_stats()["pool_size"] == 0
    with db.connection() as conn:
        assert conn.info.backend_pid != first
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1


def test_the_idle_limit_is_a_setting(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused")
    monkeypatch.setenv("MEDIA_BUCKET", "bucket")
    monkeypatch.delenv("DB_POOL_MAX_IDLE", raising=False)
    config.get_settings.cache_clear()
    try:
        assert config.get_settings().db_pool_max_idle == 60.0
        monkeypatch.setenv("DB_POOL_MAX_IDLE", "15")
        config.get_settings.cache_clear()
        assert config.get_settings().db_pool_max_idle == 15.0
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
