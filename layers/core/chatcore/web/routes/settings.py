"""The caller's settings: GET and PUT /me/settings: ``memory``, whether the assistant remembers the
caller across sessions (``chatcore.memory``); ``push_preview``, whether a push notification's lock
screen previews the answer (``chatcore.notify``)."""

from __future__ import annotations

from fastapi import APIRouter

from chatcore import db
from chatcore.memory import changes
from chatcore.store import devices
from chatcore.store.sessions import ensure_user
from chatcore.web.dependencies import Caller
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire.schemas import UserSettings

router = APIRouter(tags=["settings"])


@router.get("/me/settings", response_model=UserSettings, responses=PROBLEM_RESPONSES)
def get_settings(sub: Caller) -> UserSettings:
    """The caller's settings (the defaults for a caller never seen)."""
    with db.connection() as conn:
        preview = devices.preview_of_sub(conn, sub)
    return UserSettings(memory=changes.is_enabled(sub), push_preview=preview)


@router.put("/me/settings", response_model=UserSettings, responses=PROBLEM_RESPONSES)
def update_settings(body: UserSettings, sub: Caller) -> UserSettings:
    """Set the caller's settings. ``{"memory": false}``: from the next turn on nothing is written to
    memory (the tools are not offered) and nothing is recalled; what is stored stays until deleted.
    ``{"push_preview": true}``: push notifications show the start of the answer on the lock screen."""
    memory = changes.set_enabled(sub, body.memory)
    with db.connection() as conn:
        preview = devices.set_preview(conn, ensure_user(conn, sub), body.push_preview)
    return UserSettings(memory=memory, push_preview=preview)
