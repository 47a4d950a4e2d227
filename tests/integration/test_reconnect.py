"""A job that loses its database connection halfway (a restart, a failover) runs once more on a new
one (``db.once_more_if_connection_lost``, used by the scheduled run's rollup and the account
function's jobs); a statement that fails on a live connection is not retried, and a second loss is
raised."""

from __future__ import annotations

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


def test_a_lost_connection_runs_the_job_once_more(stack):
    calls = []

    def work() -> int:
        with db.connection() as conn:
            calls.append(1)
            if len(calls) == 1:
                _lose_the_connection(conn)
            return conn.execute("SELECT 41 + 1 AS n").fetchone()["n"]

    assert db.once_more_if_connection_lost(work, what="a test job") == 42
    assert len(calls) == 2


def test_a_second_loss_is_raised(stack):
    calls = []

    def work() -> None:
        with db.connection() as conn:
            calls.append(1)
            _lose_the_connection(conn)

    with pytest.raises(psycopg.OperationalError):
        db.once_more_if_connection_lost(work, what="a test job")
    assert len(calls) == 2


def test_a_statement_that_fails_on_a_live_connection_is_not_retried(stack):
    calls = []

    def work() -> None:
        with db.connection() as conn:
            calls.append(1)
            with conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 10")
                conn.execute("SELECT pg_sleep(1)")

    with pytest.raises(psycopg.errors.QueryCanceled):
        db.once_more_if_connection_lost(work, what="a test job")
    assert calls == [1]
