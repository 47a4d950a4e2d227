"""Apply the schema migrations (``sql/migrations``, shipped beside this file as ``migrations/``).

Two ways in:

- a CloudFormation custom resource (``Custom::DatabaseMigrations`` in template.yaml): Create and
  Update apply every pending migration, Delete does nothing (the schema outlives the stack). The
  outcome is always PUT to the pre-signed ``ResponseURL``, SUCCESS or FAILED, even when the
  database cannot be reached or the function is about to time out, so a deploy never hangs;
- a direct invocation with a plain event: ``{}`` or ``{"action": "apply"}`` applies,
  ``{"action": "status"}`` lists each migration's state. A failure raises (the invocation fails).

The database is named as for every function (``DATABASE_URL``, ``DB_SECRET_ARN`` or ``DB_IAM_AUTH``),
as the migration user (the schema's owner); ``DB_APP_USER`` is then granted the application's rights.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from chatcore import db, migrate
from chatcore.observability import logger, tracer

MIGRATIONS_DIR = Path(os.environ.get("MIGRATIONS_DIR") or Path(__file__).resolve().parent / "migrations")
# Leave this much of the function's time to report FAILED before Lambda stops it.
RESPONSE_MARGIN_MS = 10_000


def _connect() -> psycopg.Connection:
    conn = db.connect()
    conn.row_factory = tuple_row  # the runner unpacks rows as tuples; db.connect() gives dicts
    return conn


def apply_migrations() -> list[str]:
    """Apply what is pending as the schema's owner, then grant the app user (DB_APP_USER) its rights."""
    with _connect() as conn:
        applied = [m.path.name for m in migrate.apply(conn, MIGRATIONS_DIR)]
        if app_user := os.environ.get("DB_APP_USER"):
            migrate.grant_app_user(conn, app_user)
        return applied


def migration_status() -> list[dict[str, str]]:
    with _connect() as conn:
        return [{"migration": m.path.name, "state": state} for m, state in migrate.status(conn, MIGRATIONS_DIR)]


def send_response(event: dict[str, Any], status: str, reason: str, data: dict[str, Any] | None = None) -> None:
    """PUT the custom resource's outcome to CloudFormation's pre-signed URL."""
    body = json.dumps({
        "Status": status,
        "Reason": reason[:3000],
        # stable across updates, so CloudFormation never "replaces" (and deletes) the schema resource
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-schema",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": data or {},
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as response:
        logger.info("custom resource response sent", extra={"status": status, "http_status": response.status})


def _custom_resource(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_type = event.get("RequestType")
    if request_type == "Delete":
        send_response(event, "SUCCESS", "the schema is kept when the stack or resource is deleted")
        return {"Status": "SUCCESS"}
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["applied"] = apply_migrations()
        except Exception as e:  # noqa: BLE001 - reported to CloudFormation below
            logger.exception("migrations failed")
            outcome["error"] = f"{e.__class__.__name__}: {e}"

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else 300_000
    worker.join(timeout=max(1.0, (remaining_ms - RESPONSE_MARGIN_MS) / 1000))
    if worker.is_alive():
        status, reason, data = "FAILED", "migrations did not finish before the function's timeout", {}
    elif "error" in outcome:
        status, reason, data = "FAILED", outcome["error"], {}
    else:
        applied = outcome["applied"]
        status, reason = "SUCCESS", f"{len(applied)} migration(s) applied"
        data = {"Applied": ",".join(applied) or "none"}
    send_response(event, status, reason, data)
    return {"Status": status, "Reason": reason, **data}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    event = event or {}
    if "ResponseURL" in event and "RequestType" in event:
        try:
            return _custom_resource(event, context)
        except Exception as e:
            # Whatever broke (even the response itself), try once more so the stack never waits an hour.
            logger.exception("custom resource failed")
            try:
                send_response(event, "FAILED", f"{e.__class__.__name__}: {e}")
            except Exception:  # noqa: BLE001
                logger.exception("could not send the FAILED response")
            raise
    action = event.get("action", "apply")
    if action == "apply":
        applied = apply_migrations()
        logger.info("migrations applied", extra={"applied": applied})
        return {"applied": applied, "count": len(applied)}
    if action == "status":
        return {"migrations": migration_status()}
    raise ValueError(f"unknown action {action!r}: use 'apply' or 'status'")
