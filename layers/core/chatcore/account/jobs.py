"""The account function's jobs: an account's deletion and an export, which can outlast an API request.

``request_deletion`` and ``request_export`` are what DELETE /me and POST /me/export do: the work
that fits the request is done in it, the rest handed over. ``start`` hands a job over: on AWS (``ACCOUNT_FUNCTION_NAME`` set) as an asynchronous invoke of the
account function (Lambda retries a failed one twice; then it lands in the failures queue, and the
scheduled function resumes what is unfinished); locally (bin/serve, tests) in a daemon thread of
this process. ``run`` is what the account function calls. Every job is idempotent: running one
twice, or two at once, does no harm.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any, Literal
from uuid import UUID

from chatcore import aws, db
from chatcore.account import deletion, export
from chatcore.config import get_settings
from chatcore.errors import StorageUnavailable
from chatcore.store import accounts

log = logging.getLogger(__name__)

Kind = Literal["deletion", "export"]
KINDS: tuple[Kind, ...] = ("deletion", "export")

# How long one job may work: the account function's timeout is 15 minutes.
JOB_SECONDS = 12 * 60
# How often a request waiting for its export looks again.
POLL_SECONDS = 0.2


def request_deletion(sub: str, *, wait_seconds: float) -> dict[str, Any]:
    """DELETE /me: the account is detached at once and deleted for up to ``wait_seconds``; what is
    left is handed to the account function. ``{"status": "deleted"}``, or the deletion's state
    (``deletion.deletion_state``) while it goes on."""
    try:
        done, _ = deletion.delete_account(sub, wait_seconds=wait_seconds)
    except StorageUnavailable:  # accepted all the same: the account function goes on with it
        log.warning("account deletion: S3 failed; handed to the account function", exc_info=True)
        done = False
    if not done:
        with db.connection() as conn:
            pending = [row["id"] for row in accounts.pending_deletions(conn, sub)]
        for deletion_id in pending:  # no connection held while Lambda is called
            start("deletion", deletion_id)
    return deletion.deletion_state(sub) or {"status": "deleted"}


def request_export(sub: str, *, wait_seconds: float) -> dict[str, Any]:
    """POST /me/export: the caller's export being built, else a new one handed to the account
    function; its row once ready, or as it stands after ``wait_seconds``."""
    row, new = export.start_export(sub)
    if new:  # no connection is held while the job is handed over
        start("export", row["id"])
    deadline = time.monotonic() + wait_seconds
    while row["status"] == "building" and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        row = export.get_export(sub, row["id"]) or row
    return row


def run(kind: Kind, job_id: UUID) -> dict[str, Any]:
    """Do the job; a summary for the log. Raises when it failed (to be retried)."""
    if kind == "deletion":
        result = deletion.run_deletion(job_id, wait_seconds=JOB_SECONDS)
        return {"job": kind, "id": str(job_id), "done": result.done, "sessions_deleted": result.sessions_deleted,
                "waiting_for": [str(r) for r in result.waiting_for]}
    if kind == "export":
        return {"job": kind, "id": str(job_id), **export.build_export(job_id)}
    raise ValueError(f"no job of kind {kind!r}")


def parse(event: dict[str, Any]) -> tuple[Kind, UUID]:
    """The job an account function event names: ``{"job": "deletion"|"export", "id": "<uuid>"}``."""
    kind = event.get("job") if isinstance(event, dict) else None
    if kind not in KINDS:
        raise ValueError(f'the event must name a job ("job": one of {", ".join(KINDS)})')
    try:
        return kind, UUID(str(event.get("id")))
    except ValueError as e:
        raise ValueError('the event must name the job\'s id ("id": a UUID)') from e


# What EventBridge delivers when an administrator deletes a user in Cognito (CloudTrail's record of
# the AdminDeleteUser call; the template's rule matches only that call on the app's user pool).
COGNITO_SOURCE, COGNITO_DELETE = "aws.cognito-idp", "AdminDeleteUser"
_SUB = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_cognito_deletion(event: Any) -> bool:
    return (isinstance(event, dict) and event.get("source") == COGNITO_SOURCE
            and (event.get("detail") or {}).get("eventName") == COGNITO_DELETE)


def deleted_sub(event: dict[str, Any]) -> str | None:
    """The ``sub`` of the user an AdminDeleteUser event deleted: CloudTrail's ``additionalEventData.sub``
    when it gives it, else the call's ``username`` when that is a sub (the app's pool signs in by e-mail,
    so a user's username is their sub). None for a call that failed (nothing was deleted). Raises
    ``ValueError`` when the event names no sub (the username hidden, or an e-mail alias): the
    failure lands in the failures queue, and an operator deletes the account by its sub
    (``python -m chatcore.account.deletion SUB``)."""
    detail = event.get("detail") or {}
    if detail.get("errorCode"):
        return None
    candidates = [(detail.get("additionalEventData") or {}).get("sub"),
                  (detail.get("requestParameters") or {}).get("username")]
    for value in candidates:
        if isinstance(value, str) and _SUB.fullmatch(value.lower()):
            return value
    raise ValueError("the AdminDeleteUser event names no user's sub (its username is hidden or an alias): "
                     "delete the account with `python -m chatcore.account.deletion SUB`")


def delete_deleted_user(event: dict[str, Any]) -> dict[str, Any]:
    """An account deleted in Cognito by an administrator: the same deletion as DELETE /me, worked on for
    up to ``JOB_SECONDS`` and then handed on as a deletion job; a summary for the log (no sub in it)."""
    sub = deleted_sub(event)
    if sub is None:
        return {"job": "cognito-deletion", "status": "ignored", "reason": "the call failed"}
    state = request_deletion(sub, wait_seconds=JOB_SECONDS)
    return {"job": "cognito-deletion", "status": state["status"]}


def start(kind: Kind, job_id: UUID) -> None:
    """Hand the job to the account function (or a thread). Never raises: a job that could not be
    handed over is logged, and the scheduled function resumes it."""
    name = get_settings().account_function_name
    try:
        if name:
            _lambda_client().invoke(FunctionName=name, InvocationType="Event",
                                    Payload=json.dumps({"job": kind, "id": str(job_id)}).encode())
        else:
            threading.Thread(target=_run_logged, args=(kind, job_id), name=f"{kind}-{job_id}", daemon=True).start()
    except Exception:  # noqa: BLE001 - the job stays recorded; the schedule picks it up
        log.warning("could not start the %s job %s", kind, job_id, exc_info=True)


def _run_logged(kind: Kind, job_id: UUID) -> None:
    try:
        log.info("account job done", extra=run(kind, job_id))
    except Exception:  # noqa: BLE001 - a thread has no one to raise to
        log.exception("the %s job %s failed", kind, job_id)


LAMBDA = aws.Client("lambda", lambda s: {"connect_timeout": 3, "read_timeout": 10,
                                         "retries": {"max_attempts": 3, "mode": "standard"}})


def _lambda_client() -> Any:
    return LAMBDA.get()


def forget_client() -> None:
    """Drop the Lambda client (SnapStart, tests)."""
    LAMBDA.forget()