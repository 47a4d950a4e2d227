"""Postgres connections: a tiny pool (one connection per Lambda sandbox by default), reopened when broken.

``DB_POOL_MAX`` raises the pool size for a local server that handles requests concurrently.
Connections use ``prepare_threshold=None`` so RDS Proxy does not pin sessions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from chatcore.config import get_settings

_lock = threading.Lock()
_pool: ConnectionPool | None = None

CONNECT_KWARGS = {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row}


def connect(url: str | None = None) -> psycopg.Connection:
    """A new standalone connection (scripts, migrations, tests)."""
    return psycopg.connect(url or get_settings().database_url, **CONNECT_KWARGS)


def pool() -> ConnectionPool:
    """The process pool, opened on first use."""
    global _pool
    with _lock:
        if _pool is None:
            size = int(os.environ.get("DB_POOL_MAX", "1"))
            _pool = ConnectionPool(
                get_settings().database_url,
                min_size=1,
                max_size=max(1, size),
                kwargs=CONNECT_KWARGS,
                check=ConnectionPool.check_connection,
                num_workers=1,
                open=True,
                name="chat",
            )
        return _pool


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A connection from the pool, checked before use and returned afterwards."""
    with pool().connection() as conn:
        yield conn


def close_pool() -> None:
    """Close the process pool (tests, shutdown)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.close()
        _pool = None
