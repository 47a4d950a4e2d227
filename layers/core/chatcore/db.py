"""Postgres connections: a tiny pool (at most one connection per Lambda sandbox by default), reopened
when broken, and holding none it does not use.

``DB_POOL_MAX`` raises the pool size for a local server that handles requests concurrently;
``DB_POOL_TIMEOUT`` (seconds, default 5) is how long a request waits for a connection before it is
answered 503 ``database-unavailable``. The pool opens a connection when a request needs one (none at
start) and closes one left unused for ``DB_POOL_MAX_IDLE`` seconds (60): a sandbox between bursts
holds no database backend for long (a frozen sandbox's is closed by RDS Proxy's idle client timeout
or the server's ``idle_session_timeout``, and the pool notices before reuse).
Connections use ``prepare_threshold=None`` so RDS Proxy does not pin sessions.

TLS in AWS: ``sslmode=verify-full`` against the CA bundle the core layer ships
(``chatcore/certs/postgres-ca.pem``: Amazon RDS's CAs and the Amazon roots of RDS Proxy's certificate,
``python -m local.certs``), or ``DB_SSLROOTCERT``: the server's certificate and name are checked, so
an IAM token or a password (bearer credentials) only ever goes to the database. ``DB_SSLMODE`` changes
the mode (``disable`` for a local Postgres without TLS).

Credentials: ``DATABASE_URL`` (local, tests); else ``DB_IAM_AUTH=1``: a fresh IAM auth token (valid
15 minutes) for every new connection, signed locally by boto3; else ``DB_SECRET_ARN``: the RDS secret
(host, port, username, password, dbname), cached by Powertools Parameters, so a rotated password is
picked up by the next connection after the cache expires. ``DB_HOST``/``DB_PORT`` (an RDS Proxy
endpoint) and ``DB_NAME`` override the secret's own.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from chatcore.config import get_secret, get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_lock = threading.Lock()
_pool: ConnectionPool | None = None

CONNECT_KWARGS = {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row}
# In AWS: a connect that fails fast instead of hanging until the function's timeout (TLS: _tls_kwargs).
AWS_CONNECT_KWARGS = {"connect_timeout": 10}
DEFAULT_SSLMODE = "verify-full"
CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "postgres-ca.pem"

_rds: Any = None


def _rds_client() -> Any:
    global _rds
    if _rds is None:
        import boto3

        _rds = boto3.client("rds", region_name=get_settings().aws_region)
    return _rds


def tls_kwargs() -> dict[str, Any]:
    """The TLS of a connection in AWS: ``verify-full`` against the shipped CA bundle unless
    ``DB_SSLMODE`` says otherwise. Raises when a verifying mode has no CA file to verify with."""
    s = get_settings()
    mode = s.db_sslmode or DEFAULT_SSLMODE
    if mode not in ("verify-full", "verify-ca"):
        # (a root file would turn "require" into verify-ca in libpq: none is given)
        return {"sslmode": mode}
    rootcert = Path(s.db_sslrootcert) if s.db_sslrootcert else CA_BUNDLE
    if not rootcert.is_file():
        raise RuntimeError(
            f"Postgres TLS: sslmode={mode} needs a CA bundle and {rootcert} does not exist "
            f"({'DB_SSLROOTCERT' if s.db_sslrootcert else 'the core layer ships chatcore/certs/postgres-ca.pem: python -m local.certs'}); "
            "DB_SSLMODE=disable only for a local Postgres without TLS")
    return {"sslmode": mode, "sslrootcert": str(rootcert)}


def _iam_kwargs() -> dict[str, Any]:
    s = get_settings()
    token = _rds_client().generate_db_auth_token(DBHostname=s.db_host, Port=s.db_port, DBUsername=s.db_user,
                                                 Region=s.aws_region)
    return {**CONNECT_KWARGS, **AWS_CONNECT_KWARGS, **tls_kwargs(), "host": s.db_host, "port": s.db_port,
            "dbname": s.db_name, "user": s.db_user, "password": token}


def _secret_kwargs() -> dict[str, Any]:
    s = get_settings()
    secret = get_secret(s.db_secret_arn, as_json=True)
    host, port = (s.db_host, s.db_port) if s.db_host else (secret["host"], int(secret.get("port") or 5432))
    return {**CONNECT_KWARGS, **AWS_CONNECT_KWARGS, **tls_kwargs(), "host": host, "port": port,
            "dbname": s.db_name or secret.get("dbname") or "postgres", "user": secret["username"],
            "password": secret["password"]}


def connect_params() -> tuple[str, dict[str, Any] | Callable[[], dict[str, Any]]]:
    """The conninfo and the connection kwargs, a callable when they must be fresh for each connection."""
    s = get_settings()
    if s.database_url:
        return s.database_url, CONNECT_KWARGS
    tls_kwargs()  # a missing CA bundle fails here, at start-up, not in the pool's connecting thread
    return "", (_iam_kwargs if s.db_iam_auth else _secret_kwargs)


# A connection idle this long is pinged before use (the server, or RDS Proxy, may have closed it);
# a connection used a moment ago is not, which saves a round trip on every request of a busy sandbox,
# unless the server has said something since (a restart closes it): polled for free (_server_spoke).
IDLE_CHECK_SECONDS = 30.0
_returned_at: dict[int, float] = {}


def _mark_returned(conn: psycopg.Connection) -> None:
    import time

    _returned_at[id(conn)] = time.time()  # wall clock: it keeps counting while a sandbox is frozen


def _check_if_idle(conn: psycopg.Connection) -> None:
    import time

    returned = _returned_at.get(id(conn))
    if (returned is None or time.time() - returned > IDLE_CHECK_SECONDS or conn.broken or conn.closed
            or _server_spoke(conn)):
        ConnectionPool.check_connection(conn)  # a round trip; raises if the connection is dead


def _server_spoke(conn: psycopg.Connection) -> bool:
    """Whether an idle connection has something to read: a server that restarted or ended the session
    (a termination notice, then EOF). A poll with no wait, so a healthy connection costs no round trip."""
    import select

    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


def connect(url: str | None = None) -> psycopg.Connection:
    """A new standalone connection (scripts, migrations, tests)."""
    if url:
        return psycopg.connect(url, **CONNECT_KWARGS)
    conninfo, kwargs = connect_params()
    return psycopg.connect(conninfo, **(kwargs() if callable(kwargs) else kwargs))


_close_at_exit: list[bool] = []


def pool() -> ConnectionPool:
    """The process pool, opened on first use."""
    global _pool
    with _lock:
        if _pool is None:
            settings = get_settings()
            conninfo, kwargs = connect_params()
            _pool = ConnectionPool(
                conninfo,
                # no connection until a request needs one; one unused for max_idle is closed
                min_size=0,
                max_size=settings.db_pool_max,
                max_idle=settings.db_pool_max_idle,
                # a request waits at most this long for a connection: Postgres down is then a 503
                # (chatcore.web.app) in seconds, not a hung request
                timeout=settings.db_pool_timeout,
                kwargs=kwargs,  # a callable is resolved for every new connection (IAM tokens expire)
                check=_check_if_idle,
                reset=_mark_returned,
                num_workers=1,
                open=True,
                name="chat",
            )
            if not _close_at_exit:
                # closed before the interpreter finalises: a pool left open then waits 5 s for each
                # of its threads, which can no longer run (a script, a CLI, a test's subprocess)
                atexit.register(close_pool)
                _close_at_exit.append(True)
        return _pool


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A connection from the pool, checked before use and returned afterwards."""
    with pool().connection() as conn:
        yield conn


@contextmanager
def pipelined_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A transaction whose statements are pipelined: BEGIN, the body's statements and COMMIT go to
    the server together, with one round trip where the body reads a result and one at the end.

    (``conn.transaction()`` inside ``conn.pipeline()`` waits for BEGIN and for COMMIT on their own.)
    """
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise


# Postgres' connection errors (08xxx) and a server shutting down (57P0x): the connection is gone.
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


def connection_lost(error: psycopg.OperationalError) -> bool:
    """Whether ``error`` means the connection itself was lost (a restart, a failover, a network cut)
    rather than a statement that failed on a live connection."""
    return error.sqlstate is None or error.sqlstate.startswith(_CONNECTION_LOST)


def once_more_if_connection_lost(work: Callable[[], T], *, what: str) -> T:
    """``work()``, run a second time when the first attempt lost its connection (the pool replaces
    it). For idempotent jobs only: a second loss is raised."""
    try:
        return work()
    except psycopg.OperationalError as e:
        if not connection_lost(e):
            raise
        log.warning("database connection lost; running %s once more", what)
    return work()


def close_pool() -> None:
    """Close the process pool and drop the RDS client that signs IAM tokens (tests, shutdown,
    SnapStart: neither may outlive a snapshot); both are made anew on next use."""
    global _pool, _rds
    with _lock:
        if _pool is not None:
            _pool.close()
        _pool = None
        _rds = None
