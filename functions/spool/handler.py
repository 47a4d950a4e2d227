"""The spool function: writes the turns spooled while the database was unreachable (``chatcore.spool``).

Triggered by the spool's SQS FIFO queue (one message group per session, so a session's turns come in
order); every write is idempotent (fixed ids: a turn already stored is left as it is). A message that
cannot be written yet (the database still down) is reported failed with every one after it in the
batch (``ReportBatchItemFailures``) and comes back after the queue's visibility timeout; after its
receives it goes to the dead-letter queue (alarmed). Imports psycopg, boto3 and chatcore, never agno.
"""

from __future__ import annotations

from typing import Any

from chatcore.config import get_settings
from chatcore.observability import logger
from chatcore.spool import consumer

# A bad setting fails the cold start, naming the variable, instead of every batch.
get_settings()


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    response = consumer.handle_event(event or {})
    logger.info("spooled turns written", extra={"received": len((event or {}).get("Records", ())),
                                                "failed": len(response["batchItemFailures"])})
    return response
