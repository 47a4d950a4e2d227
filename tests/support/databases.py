"""Databases of a test's own on the test Postgres server: created (with every migration applied, or
empty), and dropped when the test is done. Connections are the tests' own (``tests.support.pg``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tests.support import pg


def create(stack, prefix: str, *, migrated: bool = True) -> str:
    """A new database named from ``prefix`` on the test server, with every migration applied unless
    not ``migrated``; returns its URL."""
    from chatcore.migrate import apply, default_dir

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    if stack.postgres is not None:
        url = stack.postgres.create_database(name)
    else:  # DATABASE_URL given: a sibling database on the same server
        base = stack.env["DATABASE_URL"]
        with pg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(base, dbname=name)
        assert conninfo_to_dict(url)["dbname"] == name
    if migrated:
        with pg.connect(url, autocommit=True) as conn:
            apply(conn, default_dir())
    return url


def drop(stack, url: str) -> None:
    """Drop the database of ``url`` (made by ``create``), whoever is still connected to it."""
    name = conninfo_to_dict(url)["dbname"]
    admin = stack.postgres.admin_url if stack.postgres is not None else make_conninfo(url, dbname="postgres")
    with pg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def fresh(stack, prefix: str) -> Iterator[tuple[str, psycopg.Connection]]:
    """A new database with every migration applied: its URL and an autocommit connection to it that
    reads rows as dicts; the database is dropped afterwards."""
    url = create(stack, prefix)
    try:
        with pg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            yield url, conn
    finally:
        drop(stack, url)
