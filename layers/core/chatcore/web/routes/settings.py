"""The caller's settings: GET and PUT /me/settings. One so far: ``memory``, whether the assistant
remembers the caller across sessions (``chatcore.memory``)."""

from __future__ import annotations

from fastapi import APIRouter

from chatcore.memory import changes
from chatcore.web.dependencies import Caller
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire.schemas import UserSettings

router = APIRouter(tags=["settings"])


@router.get("/me/settings", response_model=UserSettings, responses=PROBLEM_RESPONSES)
def get_settings(sub: Caller) -> UserSettings:
    """The caller's settings (the defaults for a caller never seen)."""
    return UserSettings(memory=changes.is_enabled(sub))


@router.put("/me/settings", response_model=UserSettings, responses=PROBLEM_RESPONSES)
def update_settings(body: UserSettings, sub: Caller) -> UserSettings:
    """Set the caller's settings. ``{"memory": false}``: from the next turn on nothing is written to
    memory (the tools are not offered) and nothing is recalled; what is stored stays until deleted."""
    return UserSettings(memory=changes.set_enabled(sub, body.memory))
