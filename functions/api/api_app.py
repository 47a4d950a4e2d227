"""The API function: every route but the streaming turn. Buffered, behind the Lambda Web Adapter.

It must not import agno (cold start): sessions, history, usage and the catalog only need
Postgres and S3.
"""

from __future__ import annotations

from chatcore.web.cold_start import imports_frozen

with imports_frozen():
    import asyncio
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
    from chatcore.catalog import sync_catalog
    from chatcore.config import get_settings
    from chatcore.errors import InvalidInput, NotFound, StorageUnavailable, TurnFinished, TurnInProgress
    from chatcore.media import s3
    from chatcore.media.images import sniff_image_type
    from chatcore.media.uploads import presign
    from chatcore.money.budgets import budget_status
    from chatcore.store import catalog, sessions, turn_events, turns, usage as user_usage
    from chatcore.web.fastapi_app import PROBLEM_RESPONSES, create_app
    from chatcore.web.openapi import problem_response
    from chatcore.web.identity import caller
    from chatcore.web.schemas import (
        MAX_PAGE_SIZE, AgentOut, CreateSession, ImageOut, MessageOut, MessagePage, Money, RenameSession,
        SessionDetail, SessionOut, SessionPage, SessionSummary, TeamOut, TokenCounts, ToolCallOut, ToolResultOut,
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
    cursor: Annotated[str | None, Query(max_length=200)] = None,
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
    """Delete a session: its messages, runs and images. Nothing of it remains reachable."""
    def check(conn, lock: bool) -> None:
        if not sessions.owns_session(conn, sub, session_id, lock=lock):
            raise NotFound("no such session")
        running = turns.find_running_turn(conn, session_id, get_settings().stale_turn_seconds)
        if running is not None and not running["stale"]:
            raise TurnInProgress("a turn is running in this session; delete it when the turn ends",
                                 run_id=str(running["id"]))

    def delete_objects() -> None:
        try:
            s3.delete_session_objects(session_id)
        except Exception as e:  # noqa: BLE001 - reported as a retryable problem
            raise StorageUnavailable(f"could not delete the session's images ({e.__class__.__name__}); "
                                     "the session is kept, try again") from e

    def delete():
        # S3 is never called while a transaction or the session's lock is held: check, delete the
        # objects (if S3 fails, the session and the right to retry stay), delete the rows under the
        # lock after checking again, then sweep the objects once more (a photo a turn put there
        # in between; reads never write to S3)
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
    await _run(delete)
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


# ---- messages

def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    return json.dumps(content)


def _images(parts: dict, session_id: UUID, expires_in: int) -> list[ImageOut]:
    out = []
    for image in parts.get("images") or []:
        ref = image.get("media_reference") or {}
        key = ref.get("storage_key")
        size = ref.get("size")
        mime = image.get("mime_type") or ref.get("mime_type")
        if key is None and isinstance(image.get("content"), str):
            # a small image kept inline in the row: the turn put it in S3 too, under its content key;
            # the phone gets a URL to it, never base64, and reading writes nothing to S3
            content = base64.b64decode(image["content"])
            mime = sniff_image_type(content) or mime or "application/octet-stream"
            key, size = s3.media_key(session_id, content, mime), len(content)
        if key is None or not key.startswith(s3.session_prefix(session_id)):
            continue  # not an object of this session: never sign it
        out.append(ImageOut(id=image.get("id"), mime_type=mime, size=size, url=s3.presigned_get(key),
                            expires_in=expires_in))
    return out


def _message(row: dict, session_id: UUID, expires_in: int) -> MessageOut:
    parts = row["message_parts"]
    tool_calls = [ToolCallOut(id=c.get("id"), name=(c.get("function") or {}).get("name"),
                              arguments=(c.get("function") or {}).get("arguments"))
                  for c in parts.get("tool_calls") or []]
    tool_result = None
    if row["role"] == "tool":
        tool_result = ToolResultOut(call_id=parts.get("tool_call_id"), name=parts.get("tool_name"),
                                    error=bool(parts.get("tool_call_error")))
    return MessageOut(
        id=row["id"], run_id=row["run_id"], parent_run_id=row["parent_run_id"], run_status=row["run_status"],
        role=row["role"], agent_name=row["agent_name"], member=row["parent_run_id"] is not None,
        text=_text(parts.get("content")), tool_calls=tool_calls, tool_result=tool_result,
        images=_images(parts, session_id, expires_in), model_id=row["model_id"],
        usage=TokenCounts(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                          cache_read_tokens=row["cache_read_tokens"], cache_write_tokens=row["cache_write_tokens"]),
        cost=_money(row["cost_usd"], row["cost_in_rands"]), created_at=row["created_at"],
    )


@router.get("/sessions/{session_id}/messages", response_model=MessagePage, responses=PROBLEM_RESPONSES,
            tags=["sessions"])
async def list_messages(
    session_id: UUID,
    sub: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
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
        items = [_message(r, session_id, expires_in) for r in rows[:limit]]
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
    start: Annotated[date | None, Query(alias="from", description="first day (UTC), default: first of this month")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (UTC, inclusive), default: today")] = None,
) -> UsageOut:
    """The caller's tokens and cost in rands by day and by agent or team."""
    today = datetime.now(timezone.utc).date()
    end = end or today
    start = start or end.replace(day=1)
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


app = create_app(title="Agent chat API", routers=[router], on_startup=[sync_catalog])
