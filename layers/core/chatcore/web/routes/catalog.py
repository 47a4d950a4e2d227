"""GET /agents and /teams: what a session can be started with."""

from __future__ import annotations

from fastapi import APIRouter

from chatcore.store import catalog
from chatcore.web.dependencies import Caller, Db
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire.schemas import AgentOut, TeamOut

router = APIRouter(tags=["catalog"])


@router.get("/agents", response_model=list[AgentOut], responses=PROBLEM_RESPONSES)
def list_agents(_: Caller, conn: Db) -> list[AgentOut]:
    """The agents a session can be started with."""
    return [AgentOut(name=r["name"], description=r["description"], model_provider=r["model_provider_slug"],
                     model_id=r["model_id"], tools=list(r["definition"].get("tools", [])),
                     thinking=bool(r["definition"].get("thinking_budget")),
                     web_search="web_search" in r["definition"],
                     approval_tools=list(r["definition"].get("approval", [])))
            for r in catalog.list_agents(conn)]


@router.get("/teams", response_model=list[TeamOut], responses=PROBLEM_RESPONSES)
def list_teams(_: Caller, conn: Db) -> list[TeamOut]:
    """The teams a session can be started with, with their member agents."""
    return [TeamOut(name=r["name"], description=r["description"], model_provider=r["model_provider_slug"],
                    model_id=r["model_id"], members=list(r["members"]),
                    thinking=bool(r["definition"].get("thinking_budget"))) for r in catalog.list_teams(conn)]
