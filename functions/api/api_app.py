"""The API function: every route but the streaming turn. Buffered, behind the Lambda Web Adapter.

It must not import agno (cold start): sessions, history, usage and the catalog only need
Postgres and S3.
"""

from __future__ import annotations

from chatcore.web.cold_start import imports_frozen

with imports_frozen():
    import asyncio
    import time
    import base64
    import binascii
    import json
    import logging
    from datetime import date, datetime, timedelta, timezone
    from decimal import Decimal
    from typing import Annotated, Any, Literal
    from uuid import UUID

    from fastapi import APIRouter, Depends, Query, Response

    from chatcore import cli, db
    from chatcore.account import deletion, export, jobs
    from chatcore.catalog import sync_catalog
    from chatcore.config import get_settings
    from chatcore.errors import (
        InvalidInput, NoDeletion, NoExport, NotFound, StorageUnavailable, TurnFinished,
    )
    from chatcore.media import s3
    from chatcore.media.uploads import presign
    from chatcore.money.budgets import budget_status
    from chatcore.store import accounts, catalog, sessions, turn_events, usage as user_usage
    from chatcore.web import messages
    from chatcore.web.fastapi_app import PROBLEM_RESPONSES, create_app
    from chatcore.web.openapi import problem_response
    from chatcore.web.identity import caller
    from chatcore.web.schemas import (
        MAX_PAGE_SIZE, AccountDeletion, AccountExport, AgentOut, CreateSession, MessagePage, Money, RenameSession,
        SessionDetail, SessionOut, SessionPage, SessionSummary, TeamOut,
        TurnCancelRequested, UploadIn, UploadOut, UsageByAgent, UsageDay, UsageOut, UsageTotals,
    )

log = logging.getLogger(__name__)
router = APIRouter()
Caller = Annotated[str, Depends(caller)]
MAX_USAGE_DAYS = 366


def _run(fn, *args):
    return asyncio.to_thread(fn, *args)


def _db(fn, *args, **kwargs):
    """``fn(conn, *args, **kwargs)`` with a pooled connection, in a thread."""
    def call():
        with db.connection() as conn:
            return fn(conn, *args, **kwargs)
    return asyncio.to_thread(call)


def _money(usd: Decimal, zar: Decimal) -> Money:
    return Money(usd=usd, zar=zar)  # written as decimal strings by the model (schemas.DecimalString)


# A cursor is what a page's next_cursor was: URL-safe base64 without padding, of at most 200 characters.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
Cursor = Annotated[str | None, Query(max_length=200, pattern=CURSOR_PATTERN, description=(
    "the next_cursor of the previous page, as it was (URL-safe base64 without padding); another "
    "value is 422 invalid-input (field: cursor)"))]
# A day is YYYY-MM-DD and nothing else (not a Unix time, not an ISO week date).
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _day(value: str | None, name: str) -> date | None:
    """A query parameter's day (already YYYY-MM-DD by its pattern), or a 422 naming it."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InvalidInput(f"'{name}' is not a day of the calendar (YYYY-MM-DD)", field=name) from e


def _encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([str(p) for p in parts]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, n: int) -> list[str] | None:
    if cursor is None:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != n or not all(isinstance(p, str) for p in parts):
            raise ValueError
        return parts
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidInput("the cursor is not one this API returned", field="cursor") from e


# ---- catalog

@router.get("/agents", response_model=list[AgentOut], responses=PROBLEM_RESPONSES, tags=["catalog"])
async def list_agents(_: Caller) -> list[AgentOut]:
    """The agents a session can be started with."""
    return [AgentOut(name=r["name"], description=r["description"], model_provider=r["model_provider_slug"],
                     model_id=r["model_id"], tools=list(r["definition"].get("tools", [])))
            for r in await _db(catalog.list_agents)]


@router.get("/teams", response_model=list[TeamOut], responses=PROBLEM_RESPONSES, tags=["catalog"])
async def list_teams(_: Caller) -> list[TeamOut]:
    """The teams a session can be started with, with their member agents."""
    return [TeamOut(name=r["name"], description=r["description"], model_provider=r["model_provider_slug"],
                    model_id=r["model_id"], members=list(r["members"])) for r in await _db(catalog.list_teams)]


# ---- sessions

@router.post("/sessions", status_code=201, response_model=SessionOut, responses=PROBLEM_RESPONSES, tags=["sessions"])
async def create_session(body: CreateSession, sub: Caller) -> SessionOut:
    """Start a session with exactly one agent or one team."""
    row = await _db(sessions.create_session, sub, agent=body.agent, team=body.team, title=body.title)
    return SessionOut(id=row["id"], agent=body.agent, team=body.team, title=row["title"], created_at=row["created_at"])


@router.get("/sessions", response_model=SessionPage, responses=PROBLEM_RESPONSES, tags=["sessions"])
async def list_sessions(
    sub: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Cursor = None,
) -> SessionPage:
    """The caller's sessions, most recently active first."""
    after = _decode_cursor(cursor, 2)
    if after is not None:
        try:
            after_updated, after_id = datetime.fromisoformat(after[0]), UUID(after[1])
        except ValueError as e:
            raise InvalidInput("the cursor is not one this API returned", field="cursor") from e
    else:
        after_updated = after_id = None

    rows = await _db(sessions.list_sessions, sub, after_updated=after_updated, after_id=after_id, limit=limit + 1)
    items = [SessionSummary(**r) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]["updated_at"].isoformat(), rows[limit - 1]["id"]) \
        if len(rows) > limit else None
    return SessionPage(items=items, next_cursor=next_cursor)


def _session_detail(conn, sub: str, session_id: UUID) -> SessionDetail:
    row = sessions.get_session(conn, sub, session_id)
    if row is None:
        raise NotFound("no such session")
    return SessionDetail(id=row["id"], agent=row["agent"], team=row["team"], title=row["title"],
                         created_at=row["created_at"], updated_at=row["updated_at"], turns=row["turns"],
                         turn_running=row["running_turns"] > 0,
                         cost=_money(row["cost_usd"], row["cost_in_rands"]))


@router.get("/sessions/{session_id}", response_model=SessionDetail, responses=PROBLEM_RESPONSES, tags=["sessions"])
async def get_session(session_id: UUID, sub: Caller) -> SessionDetail:
    """One of the caller's sessions, with its number of turns and total cost."""
    return await _db(_session_detail, sub, session_id)


@router.patch("/sessions/{session_id}", response_model=SessionDetail, responses=PROBLEM_RESPONSES, tags=["sessions"])
async def rename_session(session_id: UUID, body: RenameSession, sub: Caller) -> SessionDetail:
    """Rename a session."""
    def update():
        with db.connection() as conn:
            with conn.transaction():
                if not sessions.rename_session(conn, sub, session_id, body.title):
                    raise NotFound("no such session")
            return _session_detail(conn, sub, session_id)
    return await _run(update)


@router.delete("/sessions/{session_id}", status_code=204, tags=["sessions"], responses={
    **PROBLEM_RESPONSES, 409: problem_response("a turn is running in the session (turn-in-progress)"),
    503: problem_response("S3 could not delete the session's images (storage-unavailable); the session is "
                          "kept, try again", retry_after=True)})
async def delete_session(session_id: UUID, sub: Caller) -> Response:
    """Delete a session: its messages, runs and images. Nothing of it remains reachable; what it cost
    is kept, with no content (usage and budgets still count it)."""
    await _run(lambda: deletion.delete_session(session_id, sub=sub))
    return Response(status_code=204)


# ---- stopping a turn

def _request_cancel(conn, sub: str, session_id: UUID, run_id: UUID) -> TurnCancelRequested:
    stale = turn_events.request_cancel(conn, sub, session_id, run_id, get_settings().stale_turn_seconds)
    if stale is None:
        row = turn_events.find_turn(conn, sub, session_id, run_id)
        if row is None:
            raise NotFound("no such turn")
        raise TurnFinished(f"the turn has already finished ({row['status']})", run_id=str(run_id),
                           run_status=row["status"])
    if stale:  # its process is gone: nothing would notice the request, so it is closed here
        turn_events.close_stale_cancelled(conn, run_id)
    return TurnCancelRequested(run_id=run_id, status="cancelling")


@router.post("/sessions/{session_id}/turns/{run_id}/cancel", status_code=202, response_model=TurnCancelRequested,
             tags=["turns"], responses={**PROBLEM_RESPONSES, 409: problem_response(
                 "the turn has already finished (turn-finished): `run_id`, `run_status`")})
async def cancel_turn(session_id: UUID, run_id: UUID, sub: Caller) -> TurnCancelRequested:
    """Stop a running turn (the app's stop button), from any instance. The turn notices within about
    a second wherever it runs, ends its model call, stores what it generated so far as a
    ``cancelled`` run and ends its stream with ``TurnCancelled`` (``usage``, ``cost``). Asking again
    is harmless (202); a turn that has already finished is 409 ``turn-finished``."""
    return await _db(_request_cancel, sub, session_id, run_id)


# ---- messages (a message as the app renders it: chatcore.web.messages)

@router.get("/sessions/{session_id}/messages", response_model=MessagePage, responses=PROBLEM_RESPONSES,
            tags=["sessions"])
async def list_messages(
    session_id: UUID,
    sub: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Cursor = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first (default)")] = "asc",
    members: Annotated[bool, Query(description="include team members' messages")] = True,
) -> MessagePage:
    """What a chat screen renders, oldest first by default; images as short-lived presigned URLs."""
    after = _decode_cursor(cursor, 1)
    try:
        after_id = UUID(after[0]) if after else None
    except ValueError as e:
        raise InvalidInput("the cursor is not one this API returned", field="cursor") from e
    expires_in = get_settings().presigned_url_seconds

    def query():
        with db.connection() as conn:
            if not sessions.owns_session(conn, sub, session_id):
                raise NotFound("no such session")
            rows = sessions.list_messages(conn, session_id, after=after_id, members=members, limit=limit + 1,
                                          descending=order == "desc")
        items = [messages.app_message(r, session_id, expires_in) for r in rows[:limit]]
        return MessagePage(items=items, next_cursor=_encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None)
    return await _run(query)


# ---- usage

def _usage_row(r: dict) -> dict:
    return {"input_tokens": int(r["input_tokens"] or 0), "output_tokens": int(r["output_tokens"] or 0),
            "cache_read_tokens": int(r["cache_read_tokens"] or 0), "cache_write_tokens": int(r["cache_write_tokens"] or 0),
            "cost": _money(r["cost_usd"] or Decimal(0), r["cost_in_rands"] or Decimal(0))}


@router.get("/usage", response_model=UsageOut, response_model_by_alias=True, responses=PROBLEM_RESPONSES,
            tags=["usage"])
async def get_usage(
    sub: Caller,
    start_day: Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN, json_schema_extra={"format": "date"},
                                           description="first day (UTC), YYYY-MM-DD; default: the first of "
                                                       "'to''s month")] = None,
    end_day: Annotated[str | None, Query(alias="to", pattern=DAY_PATTERN, json_schema_extra={"format": "date"},
                                         description="last day (UTC, inclusive), YYYY-MM-DD, before 9999-12-31; "
                                                     "default: today")] = None,
) -> UsageOut:
    """The caller's tokens and cost in rands by day and by agent or team, over at most 366 days
    (``from`` at most 365 days before ``to``, and not after it; else 422)."""
    today = datetime.now(timezone.utc).date()
    end = _day(end_day, "to") or today
    start = _day(start_day, "from") or end.replace(day=1)
    if start > end:
        raise InvalidInput("'from' must not be after 'to'", field="from")
    if end >= date.max:  # the day after 'to' must exist
        raise InvalidInput(f"'to' must be before {date.max.isoformat()}", field="to")
    if (end - start).days >= MAX_USAGE_DAYS:
        raise InvalidInput(f"at most {MAX_USAGE_DAYS} days per request", field="to")

    def query():
        with db.connection() as conn:
            found = user_usage.user_usage(conn, sub, cli.day_start(start), cli.day_start(end + timedelta(days=1)))
            user_id = user_usage.user_id(conn, sub)
            return found, budget_status(conn, user_id) if user_id else None

    found, budget = await _run(query)
    by_day, by_agent, turns = found["by_day"], found["by_agent"], found["turns"]
    totals = {k: sum(int(r[k] or 0) for r in by_day) for k in
              ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}
    total_usd = sum((r["cost_usd"] for r in by_day), Decimal(0))
    total_zar = sum((r["cost_in_rands"] for r in by_day), Decimal(0))
    return UsageOut(
        start=start.isoformat(), to=end.isoformat(),
        totals=UsageTotals(**totals, cost=_money(total_usd, total_zar), turns=turns["turns"],
                           failed_turns=turns["failed_turns"]),
        by_day=[UsageDay(day=r["day"].isoformat(), **_usage_row(r)) for r in by_day],
        by_agent=[UsageByAgent(kind=r["kind"], name=r["name"], **_usage_row(r)) for r in by_agent],
        budget=budget,
    )


# ---- uploads

@router.post("/uploads", status_code=201, response_model=UploadOut, tags=["uploads"], responses={
    **PROBLEM_RESPONSES, 413: problem_response("size over UPLOAD_MAX_BYTES (payload-too-large)"),
    422: problem_response("invalid fields, or a mime_type that is not a photo type (invalid-input)"),
    503: problem_response("storage unavailable (storage-unavailable); nothing was recorded", retry_after=True)})
async def create_upload(body: UploadIn, sub: Caller) -> UploadOut:
    """Send a big photo straight to S3: POST the file to ``url`` (multipart/form-data: every one of
    ``fields``, then the file as ``file``) within ``expires_in`` seconds, then send ``{"upload_id"}`` in
    a turn's ``images``. Each upload is used by one turn, by its owner, within UPLOAD_TTL_SECONDS."""
    return UploadOut(**await _run(presign, sub, body.mime_type, body.size))


# ---- the account: deletion and export

def _accepted(response: Response, poll: str) -> None:
    """202: the work goes on after the answer; ``poll`` is where to follow it."""
    response.status_code = 202
    response.headers["Location"] = poll


def _deletion_state(sub: str) -> AccountDeletion | None:
    with db.connection() as conn:
        pending = accounts.pending_deletions(conn, sub)
    if not pending:
        return None
    return AccountDeletion(status="deleting", requested_at=pending[0]["requested_at"],
                           sessions_left=sum(p["sessions_left"] for p in pending),
                           running_turns=sum(p["running_turns"] for p in pending))


@router.delete("/me", response_model=AccountDeletion, tags=["account"], responses={
    **PROBLEM_RESPONSES, 202: {"model": AccountDeletion, "description": (
        "the account is unreadable and its deletion goes on (turns still stopping, a large account): "
        "poll GET /me/deletion (the Location) until it answers 404")},
    503: problem_response("the database is unavailable (database-unavailable); nothing was done", retry_after=True)})
async def delete_me(sub: Caller, response: Response) -> AccountDeletion:
    """Delete the caller's account: every session, message, run, summary, stored event, photo, upload
    and export, and the user. Running turns are stopped first (what they cost is kept). Only usage
    stays, with no user and no content (the operator's accounting). From this request on nothing of
    the account is readable, and the same identity starts a new, empty account.

    200 ``deleted`` when it is done within the request, else 202 ``deleting`` (it goes on by itself;
    calling again is harmless and resumes it). Then delete the Cognito user (docs/api.md)."""
    def work() -> AccountDeletion:
        try:
            done, _ = deletion.delete_account(sub, wait_seconds=get_settings().account_wait_seconds)
        except StorageUnavailable:  # accepted all the same: the account function goes on with it
            log.warning("account deletion: S3 failed; handed to the account function", exc_info=True)
            done = False
        if not done:
            with db.connection() as conn:
                pending = [row["id"] for row in accounts.pending_deletions(conn, sub)]
            for deletion_id in pending:  # no connection held while Lambda is called
                jobs.start("deletion", deletion_id)
        return _deletion_state(sub) or AccountDeletion(status="deleted")
    state = await _run(work)
    if state.status == "deleting":
        _accepted(response, "/me/deletion")
    return state


@router.get("/me/deletion", response_model=AccountDeletion, tags=["account"], responses={
    **PROBLEM_RESPONSES, 404: problem_response(
        "no deletion of the caller's account is under way (no-deletion): a deleted account is gone")})
async def get_deletion(sub: Caller) -> AccountDeletion:
    """The caller's account deletion while it goes on (``deleting``); 404 once nothing is left."""
    state = await _run(_deletion_state, sub)
    if state is None:
        raise NoDeletion("no deletion of this account is under way; a deleted account is gone")
    return state


def _export_out(row: dict) -> AccountExport:
    url = expires_in = None
    if row["status"] == "ready":
        expires_in = get_settings().presigned_url_seconds
        url = s3.presigned_get(row["key"])
    return AccountExport(id=row["id"], status=row["status"], requested_at=row["requested_at"],
                         finished_at=row["finished_at"], url=url, url_expires_in=expires_in,
                         expires_at=row["expires_at"], size=row["size"], contents=row["contents"],
                         error=row["error"])


@router.post("/me/export", response_model=AccountExport, tags=["account"], responses={
    **PROBLEM_RESPONSES, 202: {"model": AccountExport, "description": (
        "the export is being built: poll GET /me/export (the Location) until it is ready")}})
async def start_export(sub: Caller, response: Response) -> AccountExport:
    """Export everything stored about the caller: a zip (``account.json`` with the account, usage,
    costs and uploads; ``sessions/<id>.json`` with each session's runs and messages as the app renders
    them; the photos as files; a README.txt) behind a short-lived
    presigned URL, deleted a day after it is ready. 200 when it is ready within the request, else 202
    (an export already being built is the one answered). A ready export made less than
    EXPORT_COOLDOWN_SECONDS (default an hour) ago is answered as it is (200, a fresh ``url``) instead
    of building another."""
    def work() -> AccountExport:
        with db.connection() as conn:
            with conn.transaction():
                row, new = export.start_export(conn, sub)
        if new:
            jobs.start("export", row["id"])
        deadline = time.monotonic() + get_settings().account_wait_seconds
        while row["status"] == "building" and time.monotonic() < deadline:
            time.sleep(0.2)
            with db.connection() as conn:
                row = export.get_export(conn, sub, row["id"]) or row
        return _export_out(row)
    out = await _run(work)
    if out.status == "building":
        _accepted(response, "/me/export")
    return out


@router.get("/me/export", response_model=AccountExport, tags=["account"], responses={
    **PROBLEM_RESPONSES, 404: problem_response("no export, or it has expired (no-export): POST /me/export")})
async def get_export(sub: Caller) -> AccountExport:
    """The caller's latest export: ``building``, ``ready`` (with a fresh presigned ``url``) or ``failed``."""
    def read() -> dict | None:
        with db.connection() as conn:
            return export.latest_export(conn, sub)
    row = await _run(read)
    if row is None:
        raise NoExport("no export of this account (or it has expired); POST /me/export to make one")
    return _export_out(row)


app = create_app(title="Agent chat API", routers=[router], on_startup=[sync_catalog])
