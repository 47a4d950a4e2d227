"""A job that loses its database connection halfway (a restart, a failover) runs once more on a new
one (``db.once_more_if_connection_lost``, used by the scheduled run's rollup and the account
function's jobs); a statement that fails on a live connection is not retried, and a second loss is
raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from chatcore import db


def _lose_the_connection(conn: psycopg.Connection) -> None:
    """Terminate the server process ``conn`` is talking to in the middle of a transaction, from
    another connection, as a restart or a failover would; the statement after it fails. (Inside the
    transaction the pid is the server's, with or without a transaction pooler in between.)"""
    with conn.transaction():
        pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        with db.connect(db.get_settings().database_url) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.execute("SELECT 1")


class _Job:
    """A job for ``db.once_more_if_connection_lost``: each attempt runs ``body(conn, attempt)`` on a
    connection of the pool, attempt 1 first; ``attempts`` counts them."""

    def __init__(self, body: Callable[[psycopg.Connection, int], Any]) -> None:
        self.body = body
        self.attempts = 0

    def __call__(self) -> Any:
        with db.connection() as conn:
            self.attempts += 1
            return self.body(conn, self.attempts)


def test_a_lost_connection_runs_the_job_once_more(stack):
    def body(conn: psycopg.Connection, attempt: int) -> int:
        if attempt == 1:
            _lose_the_connection(conn)
        return conn.execute("SELECT 41 + 1 AS n").fetchone()["n"]

    job = _Job(body)
    assert db.once_more_if_connection_lost(job, what="a test job") == 42
    assert job.attempts == 2


def test_a_second_loss_is_raised(stack):
    job = _Job(lambda conn, attempt: _lose_the_connection(conn))
    with pytest.raises(psycopg.OperationalError):
        db.once_more_if_connection_lost(job, what="a test job")
    assert job.attempts == 2


def test_a_statement_that_fails_on_a_live_connection_is_not_retried(stack):
    def body(conn: psycopg.Connection, attempt: int) -> None:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 10")
            conn.execute("SELECT pg_sleep(1)")

    job = _Job(body)
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.once_more_if_connection_lost(job, what="a test job")
    assert job.attempts == 1
