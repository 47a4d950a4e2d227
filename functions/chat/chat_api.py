"""The chat function: streams agent and team turns (ASGI, behind the Lambda Web Adapter in
response_stream mode). The only route here that imports agno; every other route is in functions/api.
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from chatcore import turns
from chatcore.api_models import TurnIn
from chatcore.catalog import sync_catalog
from chatcore.config import get_settings
from chatcore.errors import InvalidInput
from chatcore.http import PROBLEM_RESPONSES, caller, create_app
from chatcore.images import decode_image
from chatcore.sse_docs import TURN_EVENTS_DESCRIPTION

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

router = APIRouter()


@router.post(
    "/sessions/{session_id}/turns",
    tags=["turns"],
    response_class=StreamingResponse,
    description=TURN_EVENTS_DESCRIPTION,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "the turn's events (server-sent events; see the description)"},
        409: {"description": "a turn is already running in this session",
              "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
        402: {"description": "the user's monthly budget is spent",
              "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
        **PROBLEM_RESPONSES,
    },
)
async def create_turn(session_id: UUID, body: TurnIn, request: Request,
                      sub: Annotated[str, Depends(caller)]) -> StreamingResponse:
    """Send a message (and photos) and stream the agent's or team's answer."""
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


app = create_app(title="Agent chat API (turns)", routers=[router], on_startup=[sync_catalog])
