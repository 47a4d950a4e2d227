"""Count client<->server round trips of psycopg connections with libpq's protocol trace (PQtrace).

libpq logs every protocol message it sends (``F``) and receives (``B``). A round trip is the client
sending one or more messages and then reading the server's answer: every switch from ``F`` lines
to ``B`` lines. A pipeline or ``executemany`` batch (many Bind/Execute, one Sync) is therefore one
round trip, a ``BEGIN`` or ``COMMIT`` sent on its own is one, and so is the empty query a
connection pool sends to check a connection.

Each traced connection writes to its own file (libpq buffers the trace with stdio and flushes it
on ``untrace``), so a round trip is counted per connection and summed.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field

import psycopg

_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)")
_SQL_START = re.compile(r'^F\t\d+\t(?:Query\t "|Parse\t "[^"]*" ")(.*)$')


@dataclass
class TraceResult:
    round_trips: int = 0
    statements: list[str] = field(default_factory=list)


def parse_trace(text: str) -> TraceResult:
    """Round trips and the statements sent. SQL may span lines (libpq prints newlines as they are)."""
    result = TraceResult()
    previous = None
    sql: list[str] | None = None  # the statement being read, while it continues on later lines

    def finish() -> None:
        nonlocal sql
        if sql is not None:
            text = " ".join(sql)
            end = text.find('"')
            result.statements.append(short_sql(text[:end] if end >= 0 else text))
            sql = None

    for line in text.splitlines():
        m = _MESSAGE.match(line)
        if m is None:  # a continuation line of a multi-line statement
            if sql is not None:
                sql.append(line)
            continue
        finish()
        direction = m.group(1)
        if direction == "B" and previous == "F":
            result.round_trips += 1
        previous = direction
        s = _SQL_START.match(line)
        if s:
            sql = [s.group(1)]
    finish()
    return result


def short_sql(sql: str) -> str:
    words = " ".join(sql.split()).split(" ")
    text = " ".join(words[:5])
    if text == "":
        return "(empty query: pool check)"
    if text == ";":
        return "; (pool pre-ping)"
    return text[:60] + ("..." if len(words) > 5 or len(text) > 60 else "")


class RoundTrips:
    """``with RoundTrips(connections) as rt: ...`` then ``rt.result``.

    ``connections`` is a list of psycopg connections, or a callable returning it (evaluated on
    enter, so connections opened since are included). Connections must be idle on enter and exit.
    """

    def __init__(self, connections):
        self._connections = connections
        self._traced: list[tuple[psycopg.pq.abc.PGconn, int, str]] = []
        self.result = TraceResult()

    def __enter__(self) -> "RoundTrips":
        conns = self._connections() if callable(self._connections) else self._connections
        for conn in conns:
            pgconn = conn.pgconn
            fd, path = tempfile.mkstemp(prefix="bench-pqtrace-", suffix=".txt")
            pgconn.trace(fd)
            pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
            self._traced.append((pgconn, fd, path))
        return self

    def __exit__(self, *exc) -> None:
        for pgconn, fd, path in self._traced:
            try:
                pgconn.untrace()  # flushes libpq's stdio buffer
            except Exception:  # noqa: BLE001 - a closed connection has nothing more to say
                pass
            try:
                with open(path) as f:
                    part = parse_trace(f.read())
            finally:
                os.unlink(path)
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.result.round_trips += part.round_trips
            self.result.statements += part.statements
        self._traced.clear()
