"""GET /sessions/{session_id}/turns/{run_id}/events (the events function): a turn's stream
resumed from any instance, the events after ``Last-Event-ID`` (or ``?after=N``), stored then live,
to its final event. It reads what the running turn writes to Postgres (``chatcore.turns.turn_events``),
so it works while the turn runs in another sandbox, and never loads agno.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chatcore.turns.turn_events import open_follow
from chatcore.web import openapi, resume
from chatcore.web.app import SSE_HEADERS, event_stream, path_uuid, resume_point

EVENTS_PATH = "/sessions/{session_id}/turns/{run_id}/events"


async def turn_events(request: Request) -> Response:
    """A turn's events after ``Last-Event-ID`` (or ``after``), stored then live, to its final event;
    204 when the client has the final event already (an ``EventSource`` then stops reconnecting)."""
    sub = await resume.events_caller(request)
    session_id, run_id = path_uuid(request, "session_id"), path_uuid(request, "run_id")
    after = resume_point(request)
    frames = await open_follow(sub, session_id, run_id, after)
    if frames is None:
        return Response(status_code=204, headers={**SSE_HEADERS, "X-Run-Id": str(run_id)})
    return event_stream(frames, run_id)


routes = [Route(EVENTS_PATH, turn_events, methods=["GET"])]

RESUME_DESCRIPTION = """\
Resumes (or replays) a turn's stream: the events after `Last-Event-ID` (the standard SSE header, the
`id` of the last event the client received), or after `?after=N`, or from the first without either;
the stored ones at once, then the new ones as the turn, running in any instance, writes them (read
about every 0.25 s while they come, up to every second while the turn is quiet), until its final event (`TurnCompleted`, `TurnFailed` or `TurnCancelled`). Ids and data
are those of the live stream: no gap, no repeat. A heartbeat comment (`: ping`) is sent when nothing
else was for 15 s. A finished turn replays from its first event for at least 24 hours; after that
only its final event, as it was first sent. `Last-Event-ID` (or `after`) at or past the final
event: `204 No Content` (the client has every event; a browser's `EventSource` stops reconnecting).
No event is ever sent after the final one. Someone else's turn, or an unknown one, is 404.

A browser's `EventSource`, which cannot send an `Authorization` header, passes a resume token
instead: `?token=` (`POST .../resume-token` gives one, for this turn, for a few minutes), and resumes
with `?after=N` when it opens a new `EventSource` (its own reconnects send `Last-Event-ID`).
"""


def add_openapi(schema: dict) -> None:
    """Describe the events route in an OpenAPI document (the combined app's, docs/openapi.json)."""
    problem = openapi.documented_problem
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    uuid = {"type": "string", "format": "uuid"}
    schema.setdefault("paths", {})[EVENTS_PATH] = {"get": {
        "tags": ["turns"],
        "summary": "Stream Turn Events",
        "operationId": openapi.operation_id("stream_turn_events"),
        "description": RESUME_DESCRIPTION,
        "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {**uuid, "title": "Session Id"}},
            {"name": "run_id", "in": "path", "required": True, "schema": {**uuid, "title": "Run Id"},
             "description": "the turn's run id: the `X-Run-Id` header of the turn's response, or `run_id` of its first event"},
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
             "description": "the id of the last event received; the stream resumes after it"},
            {"name": "after", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": 999999999},
             "description": "the same as Last-Event-ID, for clients that cannot set headers (the header wins)"},
            {"name": "token", "in": "query", "required": False,
             "schema": {"type": "string", "minLength": 1, "maxLength": 128},
             "description": "a resume token (POST .../resume-token) instead of the Authorization header, for a "
                            "browser's EventSource, which cannot send one: this turn only, for a few minutes; it "
                            "is the identity when given. Read by this route only, and never logged"},
        ],
        "responses": {
            "200": {"description": "the turn's events (server-sent events), from after the given id; read "
                                   "them with an SSE reader, not a generated client's string body (docs/api.md)",
                    "headers": {"X-Run-Id": {"schema": uuid, "description": "the turn's run id"}},
                    "content": openapi.turn_event_stream(components)},
            "204": {"description": "nothing follows the given id: it is the turn's final event's, or past it (an "
                                   "EventSource stops reconnecting on a 204)",
                    "headers": {"X-Run-Id": {"schema": uuid, "description": "the turn's run id"}}},
            "401": problem("no identity (unauthorized): no or a bad token, or a resume token that is unknown, has "
                           "expired or is for another turn (ask for a new one)"),
            "404": problem("unknown, or someone else's (not-found)"),
            "422": problem("invalid ids, Last-Event-ID or after (invalid-input); `field` names it"),
            "503": problem("the database is unavailable (database-unavailable); try again after Retry-After "
                           "seconds", retry_after=True),
        },
    }}
