"""The chat function: creates sessions and streams agent turns (ASGI, behind the Lambda Web Adapter)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from chatcore import db, storage, turns
from chatcore.api_models import CreateSession, SessionOut, TurnIn
from chatcore.config import get_settings
from chatcore.errors import InvalidInput, NotFound, PayloadTooLarge, ProblemError
from chatcore.identity import subject_from_headers
from chatcore.images import decode_image
from chatcore.runtime import sync_catalog

log = logging.getLogger("chat")
PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 30 * 1024 * 1024  # 20 images of 5 MB in base64 fit well below this
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@asynccontextmanager
async def lifespan(_: FastAPI):
    get_settings()  # fail at start-up, not mid-request, when misconfigured
    await asyncio.to_thread(sync_catalog)
    yield


app = FastAPI(title="Agent chat API", version="0.1.0", lifespan=lifespan)


def problem(err: ProblemError) -> JSONResponse:
    return JSONResponse(err.to_problem(), status_code=err.status, media_type=PROBLEM)


@app.exception_handler(ProblemError)
async def _problem_error(_: Request, err: ProblemError) -> JSONResponse:
    return problem(err)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in err.errors()]
    if any(e.get("type") == "json_invalid" for e in err.errors()):
        return problem(InvalidInput("the body is not valid JSON", errors=errors))
    return problem(InvalidInput("the request has invalid fields", errors=errors))


@app.exception_handler(404)
async def _not_found(_: Request, __: Exception) -> JSONResponse:
    return problem(NotFound("no such route"))


@app.exception_handler(405)
async def _method_not_allowed(_: Request, __: Exception) -> JSONResponse:
    err = ProblemError("method not allowed on this route")
    err.status, err.code, err.title = 405, "method-not-allowed", "Method not allowed"
    return problem(err)


@app.middleware("http")
async def _limit_body(request: Request, call_next):
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return problem(PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes"))
    return await call_next(request)


def caller(request: Request) -> str:
    return subject_from_headers(request.headers, allow_unsigned_jwt=get_settings().allow_unsigned_jwt)


def _session_out(row: dict, agent: str | None, team: str | None) -> SessionOut:
    return SessionOut(id=row["id"], agent=agent, team=team, title=row["title"], created_at=row["created_at"])


@app.post("/sessions", status_code=201, response_model=SessionOut)
async def create_session(body: CreateSession, request: Request) -> SessionOut:
    sub = caller(request)

    def create() -> dict:
        with db.connection() as conn:
            return storage.create_session(conn, sub, agent=body.agent, team=body.team, title=body.title)

    row = await asyncio.to_thread(create)
    return _session_out(row, body.agent, body.team)


@app.post(
    "/sessions/{session_id}/turns",
    responses={200: {"content": {"text/event-stream": {}}, "description": "the turn's events (SSE)"}},
)
async def create_turn(session_id: UUID, body: TurnIn, request: Request) -> StreamingResponse:
    sub = caller(request)
    settings = get_settings()
    if len(body.images) > settings.max_images_per_turn:
        raise InvalidInput(f"at most {settings.max_images_per_turn} images per turn", field="images")
    if len(body.message) > settings.max_message_chars:
        raise InvalidInput(f"the message is longer than {settings.max_message_chars} characters", field="message")
    uploads = [decode_image(img.data, img.mime_type, index=i, max_bytes=settings.max_image_bytes)
               for i, img in enumerate(body.images)]
    turn_input = turns.TurnInput(sub=sub, session_id=session_id, message=body.message, images=uploads,
                                 client_turn_id=body.client_turn_id)
    prepared = await asyncio.to_thread(turns.begin_turn, turn_input)
    if isinstance(prepared, turns.StoredOutcome):
        frames = turns.replay_frames(turns.stored_outcome_events(session_id, prepared))

        async def replay():
            for f in frames:
                yield f

        return StreamingResponse(replay(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def wait_for_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return StreamingResponse(turns.stream_turn(prepared, wait_for_disconnect), media_type="text/event-stream",
                             headers=SSE_HEADERS)


@app.get("/healthz", include_in_schema=False)
async def healthz() -> dict:
    return {"ok": True}
