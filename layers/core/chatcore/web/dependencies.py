"""The request-scoped dependencies of the API function's routes, declared once: who calls
(``Caller``: the ``sub`` of the authorised request, counted against the per-user request limit,
``web.request_limits``) and a pooled database connection (``Db``,
returned to the pool as soon as the route returns, before the answer is sent).

A route that takes ``Db`` is a plain ``def``: FastAPI runs it in its thread pool, so the blocking
database calls never hold the event loop. A route that calls S3 or another function leaves ``Db``
out and lets the domain function take a connection when it needs one (no connection is held while
the network is called).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends

from chatcore import db
from chatcore.web.request_limits import limited_caller


def _connection() -> Iterator[psycopg.Connection]:
    with db.connection() as conn:
        yield conn


Caller = Annotated[str, Depends(limited_caller)]
Db = Annotated[psycopg.Connection, Depends(_connection, scope="function")]
