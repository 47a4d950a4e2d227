"""POST /sessions/{id}/turns/{run_id}/cancel: the stop button, from any instance (``chatcore.turns.stop``)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from chatcore.turns import stop
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.openapi import documented_problem
from chatcore.wire.schemas import TurnCancelRequested

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
