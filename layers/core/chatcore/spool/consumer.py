"""The spool's consumer: each spooled turn written once the database is back, in the queue's order
(per session), never twice. In AWS the spool function (``functions/spool``) gets the messages from
the SQS trigger (``handle_event``: a message that fails, and every one after it in the batch, is
reported failed and comes back; past its receives it goes to the dead-letter queue); locally a
thread of ``bin/serve`` polls the queue (``PollingConsumer``)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from chatcore.config import get_settings
from chatcore.spool import queue, records

log = logging.getLogger(__name__)


def write_message(body: str) -> str:
    """Write the turn a message names; how it went (``records.store_record``, or ``"gone"`` when its
    record is no longer anywhere). Raises while the database is unreachable."""
    finished = queue.record_of(body)
    if finished is None:
        log.info("spooled turn %s has no record left (stored, or its session deleted)", json.loads(body)["run_id"])
        return "gone"
    outcome = records.store_record(finished, drop_orphans=True)
    log.info("spooled turn %s of session %s: %s", finished["run_id"], finished["session_id"], outcome)
    queue.forget(finished["session_id"], finished["run_id"])
    return outcome


def write_in_order(messages: list[tuple[str, str]]) -> list[str]:
    """Write ``(message id, body)`` in order; the ids not written: the first that failed and every one
    after it (a later turn of the session never goes before an earlier one)."""
    for i, (_, body) in enumerate(messages):
        try:
            write_message(body)
        except Exception:  # noqa: BLE001 - the database is still down: the message comes back
            log.warning("could not write a spooled turn yet; %d message(s) come back", len(messages) - i,
                        exc_info=True)
            return [message_id for message_id, _ in messages[i:]]
    return []


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    """An SQS trigger's batch: the partial batch response (``ReportBatchItemFailures``)."""
    failed = write_in_order([(r["messageId"], r["body"]) for r in event.get("Records", ())])
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


class PollingConsumer:
    """The consumer as a daemon thread of a local server: receive, write in order, delete what was
    written; a message not written becomes visible again after ``retry_seconds``."""

    def __init__(self, *, wait_seconds: int = 1, retry_seconds: int = 2):
        self.wait_seconds, self.retry_seconds = wait_seconds, retry_seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="spool-consumer", daemon=True)

    def start(self) -> "PollingConsumer":
        self.thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self.stopped.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        url = get_settings().spool_queue_url
        while not self.stopped.is_set():
            try:
                self.poll_once(url)
            except Exception:  # noqa: BLE001 - the queue unreachable: try again shortly
                log.warning("the spool queue could not be read", exc_info=True)
                self.stopped.wait(self.retry_seconds)

    def poll_once(self, url: str) -> int:
        """One receive and its writes; how many were written."""
        sqs = queue.client()
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds,
                                       AttributeNames=["All"]).get("Messages", [])
        if not received:
            return 0
        failed = set(write_in_order([(m["MessageId"], m["Body"]) for m in received]))
        for m in received:
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                              VisibilityTimeout=self.retry_seconds)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if failed:
            time.sleep(self.retry_seconds)
        return len(received) - len(failed)
