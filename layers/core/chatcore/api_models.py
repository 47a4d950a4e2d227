"""Request and response bodies of the HTTP API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_MESSAGE_CHARS = 32_000
MAX_IMAGES = 20
MAX_CLIENT_TURN_ID = 128
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(Strict):
    """Start a session with exactly one agent or one team."""

    agent: str | None = Field(default=None, pattern=NAME_PATTERN, description="agent name (GET /agents)")
    team: str | None = Field(default=None, pattern=NAME_PATTERN, description="team name (GET /teams)")
    title: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def one_of_agent_or_team(self) -> "CreateSession":
        if (self.agent is None) == (self.team is None):
            raise ValueError("give exactly one of 'agent' or 'team'")
        return self


class SessionOut(BaseModel):
    id: UUID
    agent: str | None = None
    team: str | None = None
    title: str | None = None
    created_at: datetime


class ImageIn(Strict):
    data: str = Field(min_length=1, description="base64 of a PNG, JPEG, GIF or WebP image (at most 5 MB decoded)")
    mime_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"] | None = Field(
        default=None, description="checked against the image's content")


class TurnIn(Strict):
    message: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    images: list[ImageIn] = Field(default_factory=list, max_length=MAX_IMAGES)
    client_turn_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_CLIENT_TURN_ID, pattern=r"^[A-Za-z0-9._:-]+$",
        description="the app's retry key: sending it again returns the stored outcome, never runs twice")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    code: str
    detail: str
