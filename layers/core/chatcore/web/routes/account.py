"""The caller's account as a whole: DELETE /me (and GET /me/deletion while it goes on), POST and
GET /me/export. The work is ``chatcore.account``'s: what fits the request is done in it, the rest
is handed to the account function and the answer is 202 with where to follow it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chatcore.account import deletion, export, jobs
from chatcore.config import get_settings
from chatcore.errors import NoDeletion, NoExport
from chatcore.media import s3
from chatcore.web.dependencies import Caller
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.openapi import documented_problem
from chatcore.wire.schemas import AccountDeletion, AccountExport

router = APIRouter(tags=["account"])


def _accepted(response: Response, poll: str) -> None:
    """202: the work goes on after the answer; ``poll`` is where to follow it."""
    response.status_code = 202
    response.headers["Location"] = poll


@router.delete("/me", response_model=AccountDeletion, responses={
    **PROBLEM_RESPONSES, 202: {"model": AccountDeletion, "description": (
        "the account is unreadable and its deletion goes on (turns still stopping, a large account): "
        "poll GET /me/deletion (the Location) until it answers 404")},
    503: documented_problem("the database is unavailable (database-unavailable); nothing was done", retry_after=True)})
def delete_me(sub: Caller, response: Response) -> AccountDeletion:
    """Delete the caller's account: every session, message, run, summary, stored event, photo, upload
    and export, and the user. Running turns are stopped first (what they cost is kept). Only usage
    stays, with no user and no content (the operator's accounting). From this request on nothing of
    the account is readable, and the same identity starts a new, empty account.

    200 ``deleted`` when it is done within the request, else 202 ``deleting`` (it goes on by itself;
    calling again is harmless and resumes it). Then delete the Cognito user (docs/api.md)."""
    state = AccountDeletion(**jobs.request_deletion(sub, wait_seconds=get_settings().account_wait_seconds))
    if state.status == "deleting":
        _accepted(response, "/me/deletion")
    return state


@router.get("/me/deletion", response_model=AccountDeletion, responses={
    **PROBLEM_RESPONSES, 404: documented_problem(
        "no deletion of the caller's account is under way (no-deletion): a deleted account is gone")})
def get_deletion(sub: Caller) -> AccountDeletion:
    """The caller's account deletion while it goes on (``deleting``); 404 once nothing is left."""
    state = deletion.deletion_state(sub)
    if state is None:
        raise NoDeletion("no deletion of this account is under way; a deleted account is gone")
    return AccountDeletion(**state)


def _export_out(row: dict) -> AccountExport:
    url = expires_in = None
    if row["status"] == "ready":
        expires_in = get_settings().presigned_url_seconds
        url = s3.presigned_get(row["key"])
    return AccountExport(id=row["id"], status=row["status"], requested_at=row["requested_at"],
                         finished_at=row["finished_at"], url=url, url_expires_in=expires_in,
                         expires_at=row["expires_at"], size=row["size"], contents=row["contents"],
                         error=row["error"])


@router.post("/me/export", response_model=AccountExport, responses={
    **PROBLEM_RESPONSES, 202: {"model": AccountExport, "description": (
        "the export is being built: poll GET /me/export (the Location) until it is ready")}})
def start_export(sub: Caller, response: Response) -> AccountExport:
    """Export everything stored about the caller: a zip (``account.json`` with the account, usage,
    costs and uploads; ``sessions/<id>.json`` with each session's runs and messages as the app renders
    them; the photos as files; a README.txt) behind a short-lived
    presigned URL, deleted a day after it is ready. 200 when it is ready within the request, else 202
    (an export already being built is the one answered). A ready export made less than
    EXPORT_COOLDOWN_SECONDS (default an hour) ago is answered as it is (200, a fresh ``url``) instead
    of building another."""
    out = _export_out(jobs.request_export(sub, wait_seconds=get_settings().account_wait_seconds))
    if out.status == "building":
        _accepted(response, "/me/export")
    return out


@router.get("/me/export", response_model=AccountExport, responses={
    **PROBLEM_RESPONSES, 404: documented_problem("no export, or it has expired (no-export): POST /me/export")})
def get_export(sub: Caller) -> AccountExport:
    """The caller's latest export: ``building``, ``ready`` (with a fresh presigned ``url``) or ``failed``."""
    row = export.latest_export(sub)
    if row is None:
        raise NoExport("no export of this account (or it has expired); POST /me/export to make one")
    return _export_out(row)
