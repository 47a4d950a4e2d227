"""Request and response bodies of the HTTP API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

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


# The photo types a turn accepts, given as base64 (ImageIn) or uploaded (UploadIn).
ImageMimeType = Literal["image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif",
                        "image/avif"]


class ImageIn(Strict):
    data: str = Field(min_length=1, description=(
        "base64 (standard or URL-safe; line breaks and missing padding are fine) of a PNG, JPEG, GIF, WebP, "
        "HEIC/HEIF or AVIF photo, at most 5 MB decoded. It is normalised on arrival: turned upright, "
        "stripped of all metadata (GPS included), downscaled to at most 1568 px and 1.15 megapixels, "
        "re-encoded as JPEG, PNG or WebP"))
    mime_type: ImageMimeType | None = Field(
        default=None, description="checked against the image's content")


class UploadRef(Strict):
    """A photo sent straight to S3 (POST /uploads), used once, by its owner, before it expires."""

    upload_id: UUID = Field(description=(
        "an upload of the caller (POST /uploads) whose file was sent to S3; normalised on arrival like a "
        "base64 photo, then its original is deleted. 404 upload-not-found, 410 upload-expired, 409 upload-used, "
        "422 upload-not-received"))


def _image_kind(item: object) -> str:
    # the item's own fields say which it is, so an error names the fields of that kind only, and an
    # item with both upload_id and data is refused (data is not a field of an upload)
    return "upload" if isinstance(item, UploadRef) or (isinstance(item, dict) and "upload_id" in item) else "base64"


class TurnIn(Strict):
    message: Text = Field(default="", max_length=Settings.max_message_chars)
    images: list[Annotated[Annotated[ImageIn, Tag("base64")] | Annotated[UploadRef, Tag("upload")],
                           Discriminator(_image_kind)]] = Field(
        default_factory=list, max_length=Settings.max_images_per_turn, description=(
            "photos: base64 (at most 5 MB each, within the 6 MB body) or {\"upload_id\"} of a photo sent "
            "straight to S3 (POST /uploads, up to 25 MB)"))
    client_turn_id: str | None = Field(
        default=None, min_length=1, max_length=Settings.max_client_turn_id_chars, pattern=r"^[A-Za-z0-9._:-]+$",
        description="the app's retry key: sending it again returns the stored outcome, never runs twice")


class UploadIn(Strict):
    """Ask for a presigned S3 POST to send one big photo straight to S3."""

    mime_type: ImageMimeType = Field(description="the photo's type; S3 requires it as the file's Content-Type")
    # the most is checked by the route (413 payload-too-large, UPLOAD_MAX_BYTES), not here (422)
    size: int = Field(ge=1, description="the file's size in bytes, at most UPLOAD_MAX_BYTES (default 25 MB)")


class UploadOut(BaseModel):
    upload_id: UUID = Field(description="send it in a turn's images: {\"upload_id\": ...}")
    url: str = Field(description="POST the file here as multipart/form-data")
    fields: dict[str, str] = Field(description="form fields to send, as they are, before the file field (named 'file')")
    expires_in: int = Field(description="seconds the url accepts the file")


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


class TurnCancelRequested(BaseModel):
    run_id: UUID
    status: Literal["cancelling"] = Field(description=(
        "the stop is recorded; the turn's stream ends with TurnCancelled within about a second"))


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
    run_status: Literal["running", "completed", "failed", "cancelled"]
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
