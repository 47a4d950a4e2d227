"""Deleting users' data: a session (DELETE /sessions/{id}, the retention period) and a whole account
(DELETE /me).

S3 is never called while a transaction or a lock is held, and objects go before the rows that name
them: a session's images are deleted, then its rows under its lock (its usage kept, with no
content), then its images are swept once more (a photo a turn put there in between). If S3 fails,
the rows stay and the deletion can be run again; nothing is left that no row names.

An account's deletion is requested in one transaction (``accounts.request_deletion``): the account
is detached from the caller's sub, so it is unreadable from then on, and its running turns are
asked to stop. Passes (``run_deletion``) then delete its sessions (a session whose turn still runs
waits for it to stop, so what the provider billed for it is stored and kept), its uploads and
exports, and last, in one transaction, keep its usage with no user and delete the users row. Every
step can run again, by any number of passes at once: DELETE /me, the account function, the
scheduled function.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from chatcore import db
from chatcore.config import get_settings
from chatcore.errors import NotFound, StorageUnavailable, TurnInProgress
from chatcore.media import s3
from chatcore.notify.devices import forget_endpoints
from chatcore.store import accounts, devices as device_rows, sessions, turns

log = logging.getLogger(__name__)

# Between passes over an account whose turns are still stopping.
POLL_SECONDS = 0.25


def delete_session(session_id: UUID, *, sub: str | None = None, inactive_before: datetime | None = None) -> None:
    """Delete a session: its images, its messages, runs, events and summary (its usage is kept).

    With ``sub`` only the caller's session (``NotFound`` otherwise); with ``inactive_before`` only
    while it was last active before then (the retention period; ``NotFound`` otherwise). ``TurnInProgress`` while a turn
    runs in it (a stale one does not count); ``StorageUnavailable`` when S3 fails before its rows
    are deleted (the session is kept, try again)."""
    stale_seconds = get_settings().stale_turn_seconds

    def check(conn, lock: bool) -> None:
        found = (sessions.owns_session(conn, sub, session_id, lock=lock) if sub is not None
                 else sessions.session_exists(conn, session_id, lock=lock, inactive_before=inactive_before))
        if not found:
            raise NotFound("no such session")
        running = turns.find_running_turn(conn, session_id, stale_seconds)
        if running is not None and not running["stale"]:
            raise TurnInProgress("a turn is running in this session; delete it when the turn ends",
                                 run_id=str(running["id"]))

    def delete_objects() -> None:
        try:
            s3.delete_session_objects(session_id)
        except Exception as e:  # noqa: BLE001 - reported as a retryable problem
            raise StorageUnavailable(f"could not delete the session's images ({e.__class__.__name__}); "
                                     "the session is kept, try again") from e

    with db.connection() as conn:
        check(conn, lock=False)
    delete_objects()
    with db.connection() as conn:
        with conn.transaction():
            check(conn, lock=True)
            sessions.delete_session(conn, session_id)
    try:
        delete_objects()
    except StorageUnavailable:  # the session is gone: its sweep is best effort, and logged
        log.warning("session %s deleted; the second sweep of its images failed", session_id, exc_info=True)


@dataclass
class DeletionPass:
    """What one pass over an account did."""

    done: bool = False
    sessions_deleted: int = 0
    uploads_deleted: int = 0
    exports_deleted: int = 0
    waiting_for: list[UUID] = field(default_factory=list)  # running turns still stopping


def run_deletion(deletion_id: UUID, *, wait_seconds: float = 0.0) -> DeletionPass:
    """Work on an account's deletion for up to ``wait_seconds`` (at least one pass): ``done`` once
    the account is gone (also when it already was). Raises ``StorageUnavailable`` when S3 fails (the
    deletion stays pending, and any later pass resumes it)."""
    deadline = time.monotonic() + wait_seconds
    result = DeletionPass()
    with db.connection() as conn:
        row = accounts.get_deletion(conn, deletion_id)
    if row is None:
        result.done = True
        return result
    user_id = row["user_id"]
    error: str | None = None
    try:
        while True:
            _one_pass(user_id, result)
            if not result.waiting_for:
                with db.connection() as conn:
                    with conn.transaction():
                        if accounts.get_deletion(conn, deletion_id, lock=True) is None:
                            result.done = True  # another pass finished it
                        else:
                            result.done = accounts.delete_user(conn, user_id)
                if result.done:
                    log.info("account deleted", extra={"deletion_id": str(deletion_id),
                                                       "sessions": result.sessions_deleted,
                                                       "uploads": result.uploads_deleted})
                    return result
            if time.monotonic() >= deadline:
                return result
            time.sleep(POLL_SECONDS)
    except Exception as e:
        error = f"{e.__class__.__name__}: {e}"[:500]
        raise
    finally:
        if not result.done:
            try:
                with db.connection() as conn:
                    accounts.note_attempt(conn, deletion_id, error)
            except Exception:  # noqa: BLE001 - the database itself may be what failed
                log.warning("could not record the deletion pass of %s", deletion_id, exc_info=True)


def _one_pass(user_id: UUID, result: DeletionPass) -> None:
    stale_seconds = get_settings().stale_turn_seconds
    with db.connection() as conn:
        accounts.cancel_running(conn, user_id)  # also a turn that had begun before the request
        rows = accounts.account_sessions(conn, user_id, stale_seconds)
        uploads = accounts.account_uploads(conn, user_id)
        exports = accounts.account_exports(conn, user_id)
    result.waiting_for = []
    for row in rows:
        if row["running_id"] is not None and not row["running_stale"]:
            result.waiting_for.append(row["running_id"])
            continue
        try:
            delete_session(row["id"])
            result.sessions_deleted += 1
        except NotFound:
            pass  # another pass deleted it
        except TurnInProgress as e:
            result.waiting_for.append(UUID(str(e.extra["run_id"])))
    if uploads:
        _delete_objects([u["key"] for u in uploads], "uploads")
        with db.connection() as conn:
            result.uploads_deleted += accounts.delete_uploads(conn, user_id, [u["id"] for u in uploads])
    if exports:
        _delete_objects([e["key"] or s3.export_key(e["id"]) for e in exports], "exports")
        with db.connection() as conn:
            result.exports_deleted += accounts.delete_exports(conn, user_id, [e["id"] for e in exports])
    with db.connection() as conn:  # the phones: no push reaches the account once deletion began
        phones = device_rows.delete_of_user(conn, user_id)
    forget_endpoints(phones)  # their SNS endpoints, best effort, no transaction open


def _delete_objects(keys: list[str], what: str) -> None:
    try:
        s3.delete_keys(keys)
    except Exception as e:  # noqa: BLE001 - reported as a retryable problem
        raise StorageUnavailable(f"could not delete the account's {what} ({e.__class__.__name__}); "
                                 "the deletion goes on when S3 answers") from e


def delete_account(sub: str, *, wait_seconds: float) -> tuple[bool, int]:
    """Request the deletion of the account of ``sub`` (as DELETE /me does) and work on it, and on
    any earlier unfinished one, for up to ``wait_seconds``: (everything done, sessions deleted)."""
    with db.connection() as conn:
        with conn.transaction():
            accounts.request_deletion(conn, sub)
        pending = accounts.pending_deletions(conn, sub)
    deadline = time.monotonic() + wait_seconds
    done, deleted = True, 0
    for row in pending:
        result = run_deletion(row["id"], wait_seconds=max(0.0, deadline - time.monotonic()))
        done, deleted = done and result.done, deleted + result.sessions_deleted
    return done, deleted


def deletion_state(sub: str) -> dict | None:
    """The caller's account deletion while it goes on: ``{"status": "deleting", "requested_at",
    "sessions_left", "running_turns"}``; None when none is under way."""
    with db.connection() as conn:
        pending = accounts.pending_deletions(conn, sub)
    if not pending:
        return None
    return {"status": "deleting", "requested_at": pending[0]["requested_at"],
            "sessions_left": sum(p["sessions_left"] for p in pending),
            "running_turns": sum(p["running_turns"] for p in pending)}


def main(argv: list[str] | None = None) -> int:
    """``python -m chatcore.account.deletion SUB``: an operator deletes a user's account (a request
    that came by e-mail, a Cognito user deleted by an administrator), exactly as DELETE /me does."""
    import argparse
    import os
    import sys

    from chatcore import cli

    parser = cli.argument_parser("python -m chatcore.account.deletion",
                                 "Delete a user's account and everything of it but anonymous usage (as DELETE /me).")
    parser.add_argument("sub", help="the user's identity (the Cognito sub)")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for running turns (default 120)")
    args: argparse.Namespace = parser.parse_args(argv)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    if not os.environ.get("DATABASE_URL") and not cli.database_url(args):
        return 2
    try:
        done, deleted = delete_account(args.sub, wait_seconds=args.wait)
    except Exception as e:  # noqa: BLE001 - a clear message, and the deletion stays pending
        print(f"error: {e}; the account is unreadable already, run this again to finish", file=sys.stderr)
        return 1
    if not done:
        print(f"still deleting ({deleted} sessions deleted): turns are still stopping; run this again", file=sys.stderr)
        return 1
    print(f"deleted: nothing of {args.sub} remains but anonymous usage ({deleted} sessions deleted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
