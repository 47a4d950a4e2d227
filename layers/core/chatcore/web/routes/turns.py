"""A turn, once sent: POST /sessions/{id}/turns/{run_id}/cancel, the stop button, from any instance
(``chatcore.turns.stop``); POST /sessions/{id}/turns/{run_id}/resume-token, a browser's way to resume
its stream (``chatcore.web.resume``)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from chatcore.turns import stop
from chatcore.web import resume
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.openapi import documented_problem
from chatcore.wire.schemas import ResumeTokenOut, TurnCancelRequested

router = APIRouter(tags=["turns"])


@router.post("/sessions/{session_id}/turns/{run_id}/cancel", status_code=202, response_model=TurnCancelRequested,
             responses={**PROBLEM_RESPONSES, 409: documented_problem(
                 "the turn has already finished (turn-finished): `run_id`, `run_status`")})
def cancel_turn(session_id: UUID, run_id: UUID, sub: Caller, conn: Db) -> TurnCancelRequested:
    """Stop a running turn (the app's stop button), from any instance. The turn notices within about
    a second wherever it runs, ends its model call, stores what it generated so far as a
    ``cancelled`` run and ends its stream with ``TurnCancelled`` (``usage``, ``cost``). Asking again
    is harmless (202); a turn that has already finished is 409 ``turn-finished``."""
    stop.request_stop(conn, sub, session_id, run_id)
    return TurnCancelRequested(run_id=run_id, status="cancelling")


@router.post("/sessions/{session_id}/turns/{run_id}/resume-token", status_code=201, response_model=ResumeTokenOut,
             responses=PROBLEM_RESPONSES)
def create_resume_token(session_id: UUID, run_id: UUID, sub: Caller, conn: Db) -> ResumeTokenOut:
    """A resume token for a browser's ``EventSource``, which cannot send an ``Authorization`` header:
    ``new EventSource(".../sessions/{session_id}/turns/{run_id}/events?token=" + token)`` resumes (or
    replays) this turn's stream, for this turn only, opened within ``expires_in`` seconds (a stream
    opened in time runs to its end; the EventSource's own reconnects send ``Last-Event-ID``). Ask for
    a new one when it has expired (the events route answers 401). Someone else's turn is 404."""
    return ResumeTokenOut(**resume.issue(conn, sub, session_id, run_id))
