"""Request and response bodies of the HTTP API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from chatcore.config import Settings

# The limits' defaults live in Settings; a function checks the configured values as well.
MAX_PAGE_SIZE = Settings.max_page_size
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _no_nul(value: str | None) -> str | None:
    # Postgres text and jsonb cannot store U+0000 nor a lone surrogate (not UTF-8): refuse them
    # here rather than fail at the INSERT.
    if value is None:
        return value
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("must not contain lone surrogates (invalid Unicode)") from e
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(Strict):
    """Start a session with exactly one agent or one team."""

    agent: str | None = Field(default=None, pattern=NAME_PATTERN, description="agent name (GET /agents)")
    team: str | None = Field(default=None, pattern=NAME_PATTERN, description="team name (GET /teams)")
    title: Text | None = Field(default=None, min_length=1, max_length=Settings.max_title_chars)

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
    data: str = Field(min_length=1, description=(
        "base64 (standard or URL-safe; line breaks and missing padding are fine) of a PNG, JPEG, GIF, WebP, "
        "HEIC/HEIF or AVIF photo, at most 5 MB decoded. It is normalised on arrival: turned upright, "
        "stripped of all metadata (GPS included), downscaled to at most 1568 px and 1.15 megapixels, "
        "re-encoded as JPEG, PNG or WebP"))
    mime_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif",
                       "image/avif"] | None = Field(
        default=None, description="checked against the image's content")


class TurnIn(Strict):
    message: Text = Field(default="", max_length=Settings.max_message_chars)
    images: list[ImageIn] = Field(default_factory=list, max_length=Settings.max_images_per_turn)
    client_turn_id: str | None = Field(
        default=None, min_length=1, max_length=Settings.max_client_turn_id_chars, pattern=r"^[A-Za-z0-9._:-]+$",
        description="the app's retry key: sending it again returns the stored outcome, never runs twice")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    code: str
    detail: str


# ---- the mobile API's responses


class RenameSession(Strict):
    title: str = Field(min_length=1, max_length=Settings.max_title_chars, description="the new title")

    @model_validator(mode="after")
    def no_nul(self) -> "RenameSession":
        _no_nul(self.title)
        return self


class SessionSummary(BaseModel):
    id: UUID
    agent: str | None = None
    team: str | None = None
    title: str | None = None
    created_at: datetime
    updated_at: datetime


class Money(BaseModel):
    usd: str = Field(description="decimal string, US dollars")
    zar: str = Field(description="decimal string, South African rand")


class SessionDetail(SessionSummary):
    turns: int
    turn_running: bool
    cost: Money


class SessionPage(BaseModel):
    items: list[SessionSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class TokenCounts(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


class ToolCallOut(BaseModel):
    id: str | None = None
    name: str | None = None
    arguments: str | None = Field(default=None, description="the JSON arguments, as the model wrote them")


class ToolResultOut(BaseModel):
    call_id: str | None = None
    name: str | None = None
    error: bool = False


class ImageOut(BaseModel):
    id: str | None = None
    mime_type: str | None = None
    size: int | None = None
    url: str = Field(description="short-lived presigned URL (see expires_in)")
    expires_in: int = Field(description="seconds the URL stays valid")


class MessageOut(BaseModel):
    id: UUID
    run_id: UUID
    parent_run_id: UUID | None = Field(description="set on a team member's messages: the team run")
    run_status: Literal["running", "completed", "failed"]
    role: Literal["user", "assistant", "tool"]
    agent_name: str | None = Field(description="who spoke: the agent, the team leader or the member")
    member: bool
    text: str | None = None
    tool_calls: list[ToolCallOut] = Field(default_factory=list)
    tool_result: ToolResultOut | None = None
    images: list[ImageOut] = Field(default_factory=list)
    model_id: str | None = None
    usage: TokenCounts
    cost: Money
    created_at: datetime


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class AgentOut(BaseModel):
    name: str
    description: str
    model_provider: str
    model_id: str
    tools: list[str]


class TeamOut(BaseModel):
    name: str
    description: str
    model_provider: str
    model_id: str
    members: list[str]


class UsageRow(TokenCounts):
    cost: Money


class UsageDay(UsageRow):
    day: str


class UsageByAgent(UsageRow):
    kind: Literal["agent", "team"]
    name: str


class UsageTotals(UsageRow):
    turns: int
    failed_turns: int


class BudgetOut(BaseModel):
    month: str
    monthly_budget_zar: str
    spent_zar: str
    reserved_zar: str = Field(description="held by running turns until they are stored (the most they may cost)")
    remaining_zar: str = Field(description="budget - spent - reserved, never below 0.00")


class UsageOut(BaseModel):
    start: str = Field(alias="from")
    to: str
    totals: UsageTotals
    by_day: list[UsageDay]
    by_agent: list[UsageByAgent]
    budget: BudgetOut | None = None

    model_config = ConfigDict(populate_by_name=True)
