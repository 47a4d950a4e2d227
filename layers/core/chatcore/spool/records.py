"""A finished turn's rows as a spool record: plain JSON (ids, amounts and times tagged, so they come
back as they were), and its one write to the database."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from chatcore import db
from chatcore.store import turns as turn_rows

log = logging.getLogger(__name__)

_TAGS = {"$uuid": UUID, "$decimal": Decimal, "$datetime": datetime.fromisoformat, "$date": date.fromisoformat}


def _tagged(value: Any) -> dict[str, str]:
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(f"a spool record cannot hold a {value.__class__.__name__}")


def _untagged(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        [(key, value)] = obj.items()
        if key in _TAGS and isinstance(value, str):
            return _TAGS[key](value)
    return obj


def encode(finished: dict[str, Any]) -> str:
    """A finished turn's rows (``store.turns.write_finished_turn``) as JSON text."""
    return json.dumps(finished, default=_tagged, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    return json.loads(text, object_hook=_untagged)


def store_record(finished: dict[str, Any], *, drop_orphans: bool = False) -> str:
    """Write a finished turn in one transaction: ``"stored"``, or ``"already"`` when an earlier write
    went through (a duplicate key: the ids are fixed, nothing is written twice). ``drop_orphans``: a
    turn whose session (or account) was deleted meanwhile is ``"orphan"`` and dropped, instead of the
    foreign key's error. Raises ``psycopg.OperationalError`` while the database is unreachable."""
    try:
        with db.connection() as conn, db.pipelined_transaction(conn):
            turn_rows.write_finished_turn(conn, finished)
    except psycopg.errors.UniqueViolation:
        log.info("turn %s was stored by an earlier write", finished["run_id"])
        return "already"
    except psycopg.errors.ForeignKeyViolation:
        if not drop_orphans:
            raise
        log.warning("turn %s of session %s is dropped: its session no longer exists", finished["run_id"],
                    finished["session_id"])
        return "orphan"
    return "stored"
