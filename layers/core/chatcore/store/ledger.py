"""The migration ledger (``schema_migrations``: each applied migration with its checksum), the lock
that serialises concurrent runners, and the app user's grants. Used by ``chatcore.migrate``."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

# Serialises concurrent runners (two deploys at once) on one advisory lock.
LOCK_ID = 7_240_001

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
LOCK = "SELECT pg_advisory_xact_lock(%s)"
APPLIED = "SELECT version, name, checksum FROM schema_migrations"
IS_APPLIED = "SELECT 1 FROM schema_migrations WHERE version = %s"
RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
IS_CURRENT_USER = "SELECT current_user = %s"

# What the app user may do: DML on every table and sequence (now and, by default privileges, those
# later migrations create), nothing on the ledger, no DDL.
APP_USER_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {user}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {user}",
    "REVOKE ALL ON schema_migrations FROM {user}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {user}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {user}",
)


def lock(conn: psycopg.Connection) -> None:
    """Take the runners' lock until the end of the transaction."""
    conn.execute(LOCK, (LOCK_ID,))


def applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """Each applied version's name and checksum (the ledger is created if missing)."""
    conn.execute(CREATE_LEDGER)
    # tuple rows whatever the connection's row factory (chatcore.db connections return dicts)
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(APPLIED).fetchall()
    return {v: (n, c) for v, n, c in rows}


def is_applied(conn: psycopg.Connection, version: int) -> bool:
    return conn.execute(IS_APPLIED, (version,)).fetchone() is not None


def record(conn: psycopg.Connection, version: int, name: str, checksum: str) -> None:
    conn.execute(RECORD, (version, name, checksum))


def is_current_user(conn: psycopg.Connection, user: str) -> bool:
    with conn.cursor(row_factory=tuple_row) as cur:
        return bool(cur.execute(IS_CURRENT_USER, (user,)).fetchone()[0])


def grant_app_user(conn: psycopg.Connection, app_user: str) -> None:
    """In the caller's transaction (after ``lock``): the app user's rights on the schema."""
    user = sql.Identifier(app_user)
    for statement in APP_USER_GRANTS:
        conn.execute(sql.SQL(statement).format(user=user))
