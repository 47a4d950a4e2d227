"""Connections of the tests' own, made as the application makes them: no server-side prepared
statements (``prepare_threshold=None``), which a transaction pooler in front of the database
(PgBouncer in the tests with ``LOCAL_PGBOUNCER=1``, RDS Proxy in AWS) cannot keep."""

from __future__ import annotations

from typing import Any

import psycopg


def connect(conninfo: str = "", **kwargs: Any) -> psycopg.Connection:
    kwargs.setdefault("prepare_threshold", None)
    return psycopg.connect(conninfo, **kwargs)
