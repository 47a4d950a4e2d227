"""The spool's queue: an SQS FIFO queue (``SPOOL_QUEUE_URL``; moto's locally, found like S3:
``AWS_ENDPOINT_URL_SQS`` / ``AWS_ENDPOINT_URL``), one message group per session (in order per
session), the run's id as the deduplication id (a turn spooled twice is one message). A message holds
the turn's record when it fits SQS's 256 KB, and always names its copy in S3 (the session's prefix,
``media.keys.spool_key``): a record too large for a message is read from there, and a new turn of the
session on any instance finds it there by the run's id."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

from chatcore import aws
from chatcore.config import get_settings
from chatcore.media import s3
from chatcore.spool import records

log = logging.getLogger(__name__)

# The most a message body may be (SQS: 256 KiB, attributes included; none are sent), with a margin.
MESSAGE_LIMIT = 250_000

# short timeouts: a turn's end waits on it only when the database is down
CLIENT = aws.Client("sqs", lambda s: {"endpoint_url": s.sqs_endpoint_url, "connect_timeout": 3, "read_timeout": 10,
                                      "retries": {"max_attempts": 3, "mode": "standard"}})


def client() -> Any:
    """The process's SQS client."""
    return CLIENT.get()


def forget_client() -> None:
    CLIENT.forget()


def enabled() -> bool:
    return bool(get_settings().spool_queue_url)


def spool(finished: dict[str, Any]) -> bool:
    """Spool a finished turn: its record to S3, then its message to the queue. True once the queue has
    it (durable: the consumer writes it); False when there is no queue or it could not be reached."""
    settings = get_settings()
    if not settings.spool_queue_url:
        return False
    session_id, run_id = finished["session_id"], finished["run_id"]
    text = records.encode(finished)
    key = s3.spool_key(session_id, run_id)
    try:
        s3.put_text(key, text)
    except Exception:  # noqa: BLE001 - a record that fits a message is spooled all the same
        log.warning("could not put the spool record of turn %s in S3", run_id, exc_info=True)
        key = None
    message = {"session_id": str(session_id), "run_id": str(run_id), "key": key, "record": text}
    body = json.dumps(message)
    if len(body.encode()) > MESSAGE_LIMIT:
        if key is None:
            log.error("turn %s is too large for a message and S3 did not take its record", run_id)
            return False
        body = json.dumps({**message, "record": None})
    try:
        client().send_message(QueueUrl=settings.spool_queue_url, MessageBody=body,
                              MessageGroupId=str(session_id), MessageDeduplicationId=str(run_id))
    except Exception:  # noqa: BLE001 - the caller keeps the turn in the process
        log.exception("could not spool turn %s to the queue", run_id)
        return False
    log.warning("turn %s spooled (%d bytes%s): written once the database is back", run_id, len(text),
                "" if json.loads(body)["record"] else ", its record in S3")
    return True


def record_of(body: str) -> dict[str, Any] | None:
    """The finished turn a message names: inline, or read from S3; None when its S3 copy is gone (the
    turn was written and its copy deleted, or its session was deleted)."""
    message = json.loads(body)
    if message.get("record"):
        return records.decode(message["record"])
    text = s3.get_text(message["key"])
    return records.decode(text) if text is not None else None


def read_spooled(session_id: UUID, run_id: UUID) -> dict[str, Any] | None:
    """The spooled record of a run, from its S3 copy; None when that run was not spooled (or is stored)."""
    text = s3.get_text(s3.spool_key(session_id, run_id))
    return records.decode(text) if text is not None else None


def forget(session_id: UUID | str, run_id: UUID | str) -> None:
    """Delete a stored turn's S3 copy (best effort: a copy left behind is written again as a no-op)."""
    try:
        s3.delete_keys([s3.spool_key(UUID(str(session_id)), UUID(str(run_id)))])
    except Exception:  # noqa: BLE001
        log.warning("could not delete the spool record of turn %s", run_id, exc_info=True)
