"""POST /sessions/{session_id}/turns (the chat function): a message with its photos and PDFs, the agent's or
team's answer streamed back as server-sent events; and POST .../turns/{run_id}/approvals, the user's
decision on a turn paused for approval, the rest of the same run streamed back the same way
(``chatcore.turns.approvals``). The only routes that load agno.

A plain Starlette route (FastAPI would add ~0.2 s to the chat function's cold start for this one
route): the body is validated with the same pydantic model, errors are the same problem+json, and
``add_openapi`` adds the route to the combined OpenAPI document.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chatcore import db, turns
from chatcore.config import get_settings
from chatcore.errors import InvalidInput, NotFound, UploadUsed
from chatcore.media.photos import PixelBudget, receive_photo
from chatcore.media.uploads import discard_originals, read_upload, read_upload_size
from chatcore.money.plans import current_limit_headers
from chatcore.turns.turn_events import callers_turn, follow
from chatcore.web import openapi
from chatcore.web.app import event_stream, path_uuid, resume_point
from chatcore.web.identity import caller
from chatcore.web.request_limits import limited_caller
from chatcore.wire.schemas import IMAGE_KINDS, ApprovalsIn, TurnEstimate, TurnIn, UploadRef, turn_image_schema
from chatcore.wire.sse import TURN_EVENTS_DESCRIPTION

TURN_PATH = "/sessions/{session_id}/turns"
APPROVALS_PATH = "/sessions/{session_id}/turns/{run_id}/approvals"
ESTIMATE_PATH = "/sessions/{session_id}/turns/estimate"


def _parse(request: Request, body: bytes, model: type = TurnIn) -> tuple[UUID, Any]:
    session_id = path_uuid(request, "session_id")
    try:
        data = json.loads(body)
    except ValueError as e:  # as FastAPI does: json.loads, so a field's own checks see odd strings
        raise InvalidInput("the body is not valid JSON", errors=[{"loc": ["body"], "msg": str(e)}]) from e
    try:
        return session_id, model.model_validate(data)
    except ValidationError as e:
        errors = [{"loc": ["body", *map(str, _field_path(d.get("loc", ())))], "msg": str(d.get("msg", ""))}
                  for d in e.errors()]
        raise InvalidInput("the request has invalid fields", errors=errors) from e


def _field_path(loc: tuple) -> list:
    """Where an error is, as the client wrote the body: an image's kind (a tag of the validation) left out."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "images" and isinstance(parts[1], int) and parts[2] in IMAGE_KINDS:
        del parts[2]
    return parts


async def _discard(upload_ids: list[UUID], run_id: UUID | None) -> None:
    """Mark the turn's uploads used by ``run_id`` and delete their originals (best effort, never raises)."""
    await asyncio.to_thread(discard_originals, upload_ids, run_id)


async def create_turn(request: Request) -> StreamingResponse:
    """Send a message (and photos and PDFs) and stream the agent's or team's answer."""
    sub = await caller(request)
    session_id, body = _parse(request, await request.body())
    resume = resume_point(request, query=False)
    try:
        uploads = await _photos(sub, body)
        documents = await _documents(sub, body)
    except UploadUsed as used:
        # a retry of a turn that already took its uploads (same client_turn_id): followed, not run again
        run_id = await _retried_run(sub, session_id, used, body.client_turn_id)
        if run_id is None:
            raise
        headers = await asyncio.to_thread(_limit_headers, sub)
        return event_stream(follow(session_id, run_id, resume), run_id, headers)
    upload_ids = [img.upload_id for img in body.images if isinstance(img, UploadRef)]
    upload_ids += [doc.upload_id for doc in body.documents if doc.upload_id is not None]
    # a message of whitespace alone is no message: a photo without a caption (stored and sent as the photo)
    message = body.message if body.message.strip() else ""
    turn_input = turns.TurnInput(sub=sub, session_id=session_id, message=message, images=uploads,
                                 documents=documents, client_turn_id=body.client_turn_id,
                                 location=body.location.user_location() if body.location else None)
    stream = await turns.open_turn(turn_input, partial(_disconnected, request), last_event_id=resume)
    if upload_ids and not stream.retried:  # the turn stored the normalised copies: the originals are done with
        await _discard(upload_ids, stream.run_id)
    return event_stream(stream.frames, stream.run_id, turn_input.rate_limit_headers)


async def estimate_turn(request: Request) -> JSONResponse:
    """What a turn with this body would cost (``chatcore.turns.estimate``): the same body and checks as a
    turn, no model call, nothing stored (an upload is read, not used), no S3 write. Counted against the
    per-user request limit like the API's routes, not against the plan's turn limits."""
    from chatcore.turns.estimate import estimate_turn as estimate

    sub = await limited_caller(request)
    session_id, body = _parse(request, await request.body())
    # a photo upload is sized from its header (a ranged GET); one whose header does not tell is read whole
    sizes = [await asyncio.to_thread(read_upload_size, sub, img.upload_id, index=i)
             if isinstance(img, UploadRef) else None for i, img in enumerate(body.images)]
    whole = body.model_copy(update={"images": [
        img for img, size in zip(body.images, sizes) if not isinstance(img, UploadRef) or size is None]})
    images = await _photos(sub, whole)
    # PDFs are read whole: their page count (what they cost) needs the file's cross-reference and page tree
    documents = await _documents(sub, body)
    message = body.message if body.message.strip() else ""
    turn_input = turns.TurnInput(sub=sub, session_id=session_id, message=message, images=images,
                                 documents=documents)
    return JSONResponse(await asyncio.to_thread(estimate, turn_input, [size for size in sizes if size is not None]))


async def decide_turn(request: Request) -> StreamingResponse:
    """Approve or decline the pending calls of a paused turn and stream the rest of the same run."""
    from chatcore.turns.approvals import Decision, open_continuation

    sub = await caller(request)
    session_id, body = _parse(request, await request.body(), ApprovalsIn)
    run_id = path_uuid(request, "run_id")
    decisions = [Decision(d.tool_call_id, d.approved, d.note) for d in body.decisions]
    stream = await open_continuation(sub, session_id, run_id, decisions, partial(_disconnected, request))
    return event_stream(stream.frames, stream.run_id)


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the turn goes on and is stored; the client may resume it)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _photos(sub: str, body: TurnIn) -> list:
    """The turn's photos, decoded (or read from S3) and normalised in a worker thread: CPU-bound, and
    the loop serves other turns. An upload that cannot be used is refused here, before anything is
    stored."""
    max_bytes = get_settings().max_image_bytes
    budget = PixelBudget.configured()  # the pixels all of the turn's photos may decode (IMAGE_MAX_DECODE_PIXELS_PER_TURN)
    return [await asyncio.to_thread(read_upload, sub, img.upload_id, index=i, budget=budget)
            if isinstance(img, UploadRef)
            else await asyncio.to_thread(receive_photo, img.data, img.mime_type, index=i, max_bytes=max_bytes,
                                         budget=budget)
            for i, img in enumerate(body.images)]


async def _documents(sub: str, body: TurnIn) -> list:
    """The turn's PDFs, decoded (or read from S3) and checked by parsing in a worker thread (pypdf is
    imported on the first one only); refused here, before anything is stored."""
    if not body.documents:
        return []
    from chatcore.media.documents import receive_document
    from chatcore.media.uploads import read_document_upload

    s = get_settings()
    return [await asyncio.to_thread(read_document_upload, sub, doc.upload_id, doc.name, index=i)
            if doc.upload_id is not None
            else await asyncio.to_thread(receive_document, doc.data, doc.name, index=i,
                                         max_bytes=s.document_max_bytes, max_pages=s.document_max_pages)
            for i, doc in enumerate(body.documents)]


async def _retried_run(sub: str, session_id: UUID, used: UploadUsed, client_turn_id: str | None) -> UUID | None:
    """The run of the turn that used an upload, when this request is that turn's retry."""
    run_id = used.extra.get("run_id")
    if client_turn_id is None or run_id is None:
        return None
    try:
        row = await asyncio.to_thread(callers_turn, sub, session_id, UUID(str(run_id)))
    except NotFound:
        return None
    return row["id"] if row["client_turn_id"] == client_turn_id else None


def _limit_headers(sub: str) -> dict[str, str]:
    """The caller's RateLimit headers now (``money.plans.current_limit_headers``)."""
    with db.connection() as conn:
        return current_limit_headers(conn, sub, get_settings().stale_turn_seconds)


routes = [Route(TURN_PATH, create_turn, methods=["POST"]), Route(ESTIMATE_PATH, estimate_turn, methods=["POST"]),
          Route(APPROVALS_PATH, decide_turn, methods=["POST"])]


def add_openapi(schema: dict) -> None:
    """Describe the turn route in an OpenAPI document (the combined app's, docs/openapi.json)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["TurnIn"] = openapi.model_schema(TurnIn, components)
    # a turn's images as one object (see turn_image_schema), not the oneOf generated clients mangle
    components["TurnIn"]["properties"]["images"]["items"] = {"$ref": "#/components/schemas/TurnImage"}
    components["TurnImage"] = turn_image_schema()
    for name in ("ImageIn", "UploadRef"):
        components.pop(name, None)
    problem = openapi.documented_problem
    components["ApprovalsIn"] = openapi.model_schema(ApprovalsIn, components)  # DecisionIn hoisted
    schema.setdefault("paths", {})[APPROVALS_PATH] = {"post": {
        "tags": ["turns"],
        "summary": "Decide Turn",
        "operationId": openapi.operation_id("decide_turn"),
        "description": (
            "The user's decision on a paused turn (its stream ended with TurnPaused, or GET /sessions/{id} shows "
            "turn_paused): one decision per pending call. Approved calls run, declined ones tell the model the user "
            "declined (with the note); the rest of the same run streams back with the turn's events, their ids "
            "following the TurnPaused event's (resumable through GET .../events like any turn). It may pause "
            "again. A retried or concurrent decision is 409 turn-not-paused: follow the run through its events "
            "route instead. A pause older than APPROVAL_TTL (24 h by default) expires: nothing runs, 409 "
            "approval-expired."),
        "parameters": [{"name": "session_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid", "title": "Session Id"}},
                       {"name": "run_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid", "title": "Run Id"}}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApprovalsIn"}}}},
        "responses": {
            "200": {"description": "the rest of the turn's events (server-sent events), after the TurnPaused event's "
                                   "id; read them with an SSE reader (docs/api.md)",
                    "headers": {"X-Run-Id": {"schema": {"type": "string", "format": "uuid"},
                                             "description": "the turn's run id (the same as the pause's)"}},
                    "content": openapi.turn_event_stream(components)},
            "402": problem("the user's monthly budget cannot cover the continuation (budget-exceeded)"),
            "404": problem("unknown, or someone else's session or turn (not-found)"),
            "409": problem("the turn is not paused (turn-not-paused: decided already, by a retry or another device, "
                           "stopped or finished; `run_status`), or its pause expired (approval-expired)"),
            "422": problem("invalid fields, or decisions that do not name each pending call exactly once "
                           "(invalid-input: `pending` lists them)"),
            "503": problem("the database or storage is unavailable; nothing was decided, try again after "
                           "Retry-After seconds", retry_after=True),
        },
    }}
    components["TurnEstimate"] = openapi.model_schema(TurnEstimate, components)
    schema.setdefault("paths", {})[ESTIMATE_PATH] = {"post": {
        "tags": ["turns"],
        "summary": "Estimate Turn",
        "operationId": openapi.operation_id("estimate_turn"),
        "description": (
            "What sending this turn would cost now, before it is sent: the same body as POST .../turns (checked "
            "the same way: photos as base64 or upload ids, PDFs, location). No model is called and nothing is "
            "stored (an upload is read, not used: send it with the turn afterwards). `cost` low / likely / high "
            "in USD and rands: likely is one model call with the prompt cache read when the session's last call "
            "is within PROMPT_CACHE_TTL; high is what the turn reserves of the budget. With it the budget left "
            "and `refusal`, the problem the turn would get now (403, 429 with retry_after, 402). Not a turn: "
            "counted against the per-user request limit, not the plan's turn limits."),
        "parameters": [{"name": "session_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid", "title": "Session Id"}}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TurnIn"}}}},
        "responses": {
            "200": {"description": "the estimate",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TurnEstimate"}}}},
            "404": problem("unknown, or someone else's (the session: not-found; an upload: upload-not-found)"),
            "409": problem("an upload was already used by a turn (upload-used)"),
            "410": problem("an upload expired (upload-expired)"),
            "422": problem("invalid fields, an invalid image or PDF, or an upload whose file was never sent, as for "
                           "a turn; `field` names it"),
            "503": problem("the database or storage is unavailable, or no exchange rate is configured; try again "
                           "after Retry-After seconds", retry_after=True),
        },
    }}
    schema.setdefault("paths", {})[TURN_PATH] = {"post": {
        "tags": ["turns"],
        "summary": "Stream Turn",
        "operationId": openapi.operation_id("stream_turn"),
        "description": TURN_EVENTS_DESCRIPTION,
        "parameters": [{"name": "session_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid", "title": "Session Id"}},
                       {"name": "Last-Event-ID", "in": "header", "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
                        "description": "on a retry with the same client_turn_id: the id of the last event "
                                       "received; the stored stream resumes after it"}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TurnIn"}}}},
        "responses": {
            "200": {"description": "the turn's events (server-sent events; see the description). Generated "
                                   "clients that buffer the body as a string see them only at the end: read "
                                   "the stream with an SSE reader (docs/api.md)",
                    "headers": {"X-Run-Id": {"schema": {"type": "string", "format": "uuid"},
                                             "description": "the turn's run id (to resume or stop it)"},
                                **openapi.RATE_LIMIT_HEADERS},
                    "content": openapi.turn_event_stream(components)},
            "402": {**problem("the user's monthly budget cannot cover this turn (budget-exceeded): `month`, "
                              "`monthly_budget_zar`, `spent_zar`, `reserved_zar`, `reservation_zar`"),
                    "headers": openapi.RATE_LIMIT_HEADERS},
            "403": {**problem("the user's plan does not include the session's agent or team, its model, thinking or "
                              "web search (not-in-plan: `plan`); or API Gateway refused the request (forbidden)"),
                    "headers": openapi.RATE_LIMIT_HEADERS},
            "429": {**problem("a limit of the user's plan refuses the turn (rate-limited: `limit`, `limit_value`, "
                              "`plan`); nothing was stored, no model was called: try again after Retry-After "
                              "seconds; or API Gateway's throttling (throttled)", retry_after=True),
                    "headers": {**openapi.RETRY_AFTER, **openapi.RATE_LIMIT_HEADERS}},
            "404": problem("unknown, or someone else's (the session: not-found; an upload: upload-not-found)"),
            "409": {**problem("a turn is already running in this session (turn-in-progress), this client_turn_id "
                              "was sent with another message (client-turn-id-reused), or an upload was already "
                              "used by another turn (upload-used); `run_id` names that turn"),
                    "headers": openapi.RATE_LIMIT_HEADERS},
            "410": problem("an upload expired (upload-expired): upload the file again"),
            "413": problem("body too large (payload-too-large), or the message does not fit one model request "
                           "with the agent's instructions (context-too-large: `estimated_tokens`, `max_tokens`)"),
            "422": problem("invalid fields (invalid-input: `errors`), an invalid image (invalid-image), an invalid "
                           "PDF (invalid-document: `reason` not-a-pdf, corrupt, encrypted or too-many-pages, with "
                           "`pages` and `max_pages`) or an upload whose file was never sent (upload-not-received); "
                           "`field` names it"),
            "503": problem("the database or storage is unavailable, or no exchange rate is configured; nothing "
                           "was stored, try again after Retry-After seconds", retry_after=True),
        },
    }}

