"""Request and response bodies of the HTTP API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from annotated_types import Ge
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field,
                      GetCoreSchemaHandler, GetJsonSchemaHandler, StrictBool, StringConstraints, Tag, model_validator)
from pydantic_core import PydanticCustomError, core_schema

from chatcore.config import DECLARED, get_settings
from chatcore.wire.amounts import DECIMAL_PATTERN, decimal_string

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


@dataclass(frozen=True)
class AtMost:
    """The most a field takes (a string's characters, a list's items, an integer), read from the
    settings (``chatcore.config``) each time a request is validated: the limit set in the environment
    is the limit enforced, by the schema alone. The JSON schema (the OpenAPI document) states the
    setting's default. The error is pydantic's own for that limit (its type and message), and a length
    is checked first, as pydantic checks its own ``max_length``."""

    setting: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        if source is int:
            return core_schema.no_info_after_validator_function(self._check_number, handler(source))
        return core_schema.no_info_before_validator_function(self._check_length, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        key = {"string": "maxLength", "array": "maxItems", "integer": "maximum"}[target["type"]]
        target[key] = DECLARED[self.setting].default
        return json_schema

    def _limit(self) -> int:
        return getattr(get_settings(), self.setting)

    def _check_length(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > (limit := self._limit()):
            raise PydanticCustomError("string_too_long", "String should have at most {max_length} characters",
                                      {"max_length": limit})
        if isinstance(value, list) and len(value) > (limit := self._limit()):
            raise PydanticCustomError(
                "too_long", "List should have at most {max_length} items after validation, not {actual_length}",
                {"field_type": "List", "max_length": limit, "actual_length": len(value)})
        return value  # anything else is checked by the type

    def _check_number(self, value: int) -> int:
        if value > (limit := self._limit()):
            raise PydanticCustomError("less_than_equal", "Input should be less than or equal to {le}", {"le": limit})
        return value


# A page's size (GET /sessions, GET /sessions/{id}/messages), a query parameter: 1 to MAX_PAGE_SIZE.
PageSize = Annotated[int, Ge(1), AtMost("max_page_size")]


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


# What _no_nul refuses, as the OpenAPI document states it: no NUL (a JSON string holds no lone
# surrogate, which _no_nul refuses too: a generated string never has one).
NO_NUL_PATTERN = "^[^\\x00]*$"
# Some character that is not whitespace (a message of whitespace alone is no message).
NOT_BLANK_PATTERN = "\\S"


def _with_pattern(schema: dict) -> None:
    schema["pattern"] = NO_NUL_PATTERN


Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra=_with_pattern)]


def _decimal_text(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        return value  # refused by the type
    try:
        return decimal_string(value)
    except (ArithmeticError, ValueError):
        return value  # not a number: refused by the pattern


# An amount as every response sends it: a decimal string, plain digits, never an exponent
# ("0.0000000000", not "0E-10"); a Decimal given to a model is written by chatcore.wire.amounts.
DecimalString = Annotated[str, StringConstraints(pattern=DECIMAL_PATTERN), BeforeValidator(_decimal_text), Field(
    examples=["0.0050898000"],
    description="a decimal string: plain digits, never an exponent (parse it as a decimal, not a float)")]
RANDS = ["500.00"]  # budget figures are rounded to the cent


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _given(name: str) -> dict:
    """A JSON schema: ``name`` is present and a string (not null)."""
    return {"required": [name], "properties": {name: {"type": "string"}}}


def _exactly_one_of_agent_or_team(schema: dict) -> None:
    # the rule the validator holds, stated so that generated requests keep it: agent given, and then
    # no team; else team given
    schema.update({"if": _given("agent"), "then": {"not": _given("team")}, "else": _given("team")})


class CreateSession(Strict):
    """Start a session with exactly one agent or one team."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of_agent_or_team)

    agent: str | None = Field(default=None, pattern=NAME_PATTERN, description="agent name (GET /agents)")
    team: str | None = Field(default=None, pattern=NAME_PATTERN, description="team name (GET /teams)")
    title: Annotated[Text, StringConstraints(min_length=1), AtMost("max_title_chars")] | None = None

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


# What POST /uploads takes: a photo's type, or a PDF's (one enum: generated clients mangle a union of two).
UploadMimeType = Literal["image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif",
                         "image/avif", "application/pdf"]


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
        "422 upload-not-received, 422 invalid-image (not a photo, or not of the upload's mime_type)"))


# The two kinds of a turn's image, as the validation tells them apart: tags of ours, not fields (an
# error names the image's own field, ``images.0.data``, never ``images.0.upload.data``).
IMAGE_KINDS = ("base64", "upload")


def _image_kind(item: object) -> str:
    # the item's own fields say which it is, so an error names the fields of that kind only, and an
    # item with both upload_id and data is refused (data is not a field of an upload)
    upload = isinstance(item, UploadRef) or (isinstance(item, dict) and "upload_id" in item)
    return IMAGE_KINDS[1] if upload else IMAGE_KINDS[0]


def turn_image_schema() -> dict:
    """How the OpenAPI document describes a turn's image: one object with the fields of a base64
    photo (``ImageIn``) and of an upload (``UploadRef``), none required by the schema. The API takes
    exactly one of ``data`` (``mime_type`` only with it) or ``upload_id`` and answers 422 naming the
    field otherwise. A oneOf of the two (which the validation is) makes generated clients merge them
    into one class with both ``data`` and ``upload_id`` required, which no photo can fill."""
    base64, upload = ImageIn.model_json_schema(), UploadRef.model_json_schema()
    return {"title": "TurnImage", "type": "object", "additionalProperties": False,
            "description": ("a photo of the turn: either {\"data\": base64, \"mime_type\"?} or {\"upload_id\"} "
                            "(POST /uploads); exactly one of data and upload_id, else 422"),
            "properties": {**base64["properties"], **upload["properties"]},
            # exactly one kind, stated in words generators leave alone (they ignore if/then/else)
            "if": {"required": ["upload_id"]},
            "then": {"not": {"anyOf": [{"required": ["data"]}, {"required": ["mime_type"]}]}},
            "else": {"required": ["data"]}}


# A turn's image as the validation reads it: a base64 photo or an upload, of the kind _image_kind says.
TurnImageIn = Annotated[Annotated[ImageIn, Tag(IMAGE_KINDS[0])] | Annotated[UploadRef, Tag(IMAGE_KINDS[1])],
                        Discriminator(_image_kind)]


class TurnLocation(Strict):
    """The user's approximate location for an agent that searches the web (sent to the search as its
    ``user_location``, so "the weather" or "load shedding today" finds local pages): what the app knows
    without asking for GPS, e.g. the phone's region setting and time zone. Used for this turn's requests
    only: never stored, logged or exported."""

    country: Annotated[str, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
                       StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2 country code, e.g. ZA")
    region: Annotated[Text, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="e.g. Western Cape")
    city: Annotated[Text, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="e.g. Cape Town")
    timezone: Annotated[str, StringConstraints(
        max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")] | None = Field(
        default=None, description="IANA time zone, e.g. Africa/Johannesburg")

    def user_location(self) -> dict[str, str] | None:
        """The fields given (None: none was)."""
        given = self.model_dump(exclude_none=True)
        return given or None


def _a_message_or_a_photo(schema: dict) -> None:
    # without a photo or a document (none, or empty lists), the message must hold something other than whitespace
    schema.update({"if": {"properties": {"images": {"maxItems": 0}, "documents": {"maxItems": 0}}},
                   "then": {"required": ["message"], "properties": {"message": {"pattern": NOT_BLANK_PATTERN}}}})


def _data_or_an_upload(schema: dict) -> None:
    # the rule the validator holds, stated so that generated requests keep it (as a turn's image says it);
    # an absent field has no default in the document (null is not a value of these strings)
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None:
            del prop["default"]
    schema.update({"if": {"required": ["upload_id"]},
                   "then": {"not": {"anyOf": [{"required": ["data"]}, {"required": ["mime_type"]}]}},
                   "else": {"required": ["data"]}})


class DocumentIn(Strict):
    """A PDF of the turn: either ``{"data": base64, "mime_type"?, "name"?}`` or ``{"upload_id", "name"?}``
    (POST /uploads with application/pdf); exactly one of data and upload_id, else 422."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_data_or_an_upload)

    # not nullable: absent is absent (a null is refused like any non-string)
    data: str = Field(default=None, min_length=1, description=(
        "base64 (standard or URL-safe; line breaks and missing padding are fine) of a PDF, within the 6 MB body; "
        "larger ones through POST /uploads (up to DOCUMENT_MAX_BYTES, 32 MB)"))
    mime_type: Literal["application/pdf"] = Field(default=None, description="only application/pdf (checked by parsing)")
    upload_id: UUID = Field(default=None, description=(
        "an upload of the caller (POST /uploads, mime_type application/pdf) whose file was sent to S3; used once. "
        "404 upload-not-found, 410 upload-expired, 409 upload-used, 422 upload-not-received"))
    name: Annotated[Text, StringConstraints(min_length=1, max_length=255)] = Field(default=None, description=(
        "the file name to show (GET /messages gives it back; the model sees the document, not its name)"))

    @model_validator(mode="after")
    def data_or_an_upload(self) -> "DocumentIn":
        if (self.data is None) == (self.upload_id is None):
            raise ValueError("give exactly one of 'data' or 'upload_id'")
        if self.upload_id is not None and self.mime_type is not None:
            raise ValueError("'mime_type' goes with 'data' only (an upload declared its type)")
        return self


class TurnIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_a_message_or_a_photo)

    message: Annotated[Text, AtMost("max_message_chars")] = Field(default="", description=(
        "the user's text; may be left out (or blank) when the turn has a photo or a document: a photo without "
        "a caption is sent to the model as the photo alone. Blank with neither: 422"))
    images: Annotated[list[TurnImageIn], AtMost("max_images_per_turn")] = Field(
        default_factory=list, description=(
            "photos: base64 (at most 5 MB each, within the 6 MB body) or {\"upload_id\"} of a photo sent "
            "straight to S3 (POST /uploads, up to 25 MB)"))
    documents: Annotated[list[DocumentIn], AtMost("max_documents_per_turn")] = Field(
        default_factory=list, description=(
            "PDFs, sent to the model as document blocks: base64 (within the 6 MB body) or {\"upload_id\"} (POST "
            "/uploads, up to 32 MB). Each is read on arrival: 422 invalid-document with its reason (not-a-pdf, "
            "corrupt, encrypted, too-many-pages: over DOCUMENT_MAX_PAGES, default 100)"))
    client_turn_id: Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9._:-]+$"),
                              AtMost("max_client_turn_id_chars")] | None = Field(
        default=None, description="the app's retry key: sending it again returns the stored outcome, never runs twice")
    location: TurnLocation | None = Field(default=None, description=(
        "the user's approximate location, for agents that search the web (ignored by the others); never stored"))


def _size_by_type(schema: dict) -> None:
    # the route's rule (413 over the type's limit), stated so that generated requests keep it: the
    # default limits of a PDF and of a photo
    pdf, photo = DECLARED["document_max_bytes"].default, DECLARED["upload_max_bytes"].default
    schema.update({"if": {"required": ["mime_type"], "properties": {"mime_type": {"const": "application/pdf"}}},
                   "then": {"properties": {"size": {"maximum": pdf}}},
                   "else": {"properties": {"size": {"maximum": photo}}}})


class UploadIn(Strict):
    """Ask for a presigned S3 POST to send one big photo or PDF straight to S3."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_size_by_type)

    mime_type: UploadMimeType = Field(
        description="the file's type (a photo's, or application/pdf); S3 requires it as the file's Content-Type")
    # the most is checked by the route (413 payload-too-large, UPLOAD_MAX_BYTES or DOCUMENT_MAX_BYTES), not
    # here (422); the document states the larger default limit
    size: int = Field(ge=1, json_schema_extra={"maximum": max(DECLARED["upload_max_bytes"].default,
                                                              DECLARED["document_max_bytes"].default)},
                      description="the file's size in bytes: a photo at most UPLOAD_MAX_BYTES (default 25 MB), a PDF "
                      "at most DOCUMENT_MAX_BYTES (default 32 MB); more: 413")


class UploadOut(BaseModel):
    upload_id: UUID = Field(description="send it in a turn's images (a photo) or documents (a PDF): {\"upload_id\": ...}")
    url: str = Field(description="POST the file here as multipart/form-data")
    fields: dict[str, str] = Field(description="form fields to send, as they are, before the file field (named 'file')")
    expires_in: int = Field(description="seconds the url accepts the file")


class FieldError(BaseModel):
    """One invalid field of a 422 ``invalid-input``."""

    loc: list[str] = Field(description=(
        "where: 'body', 'query', 'path' or 'header', then the field's path (a list index as a string)"))
    msg: str = Field(description="what is wrong with it")


def absent_when_unset(schema: dict) -> None:
    # A problem leaves out the members it does not set (it never sends null): each optional member is
    # its own type, not "T or null" (generated models then keep each member's own description).
    for name, member in schema.get("properties", {}).items():
        if name in schema.get("required", ()):
            continue
        member.pop("default", None)
        branches = [b for b in member.pop("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1:
            member.update({k: v for k, v in branches[0].items() if k not in member})


class Problem(BaseModel):
    """An RFC 9457 problem document: every error of the API, and those API Gateway answers itself
    (401 unauthorized, 403 forbidden, 413 payload-too-large, 429 throttled). ``code`` is the stable
    name to switch on; the optional members are set by the problems named in their descriptions."""

    model_config = ConfigDict(json_schema_extra=absent_when_unset)

    type: str = Field(description="a URI naming the problem type: https://errors.agent-chat.dev/<code>")
    title: str
    status: int = Field(description="the HTTP status")
    code: str = Field(description="the stable problem code (docs/api.md, Errors): not-found, invalid-input, ...")
    detail: str = Field(description="what happened, for a person")
    field: str | None = Field(default=None, description=(
        "the field, header or image at fault (invalid-input, invalid-image, payload-too-large, the upload "
        "problems): 'cursor', 'Last-Event-ID', 'images[1].upload_id', ..."))
    errors: list[FieldError] | None = Field(default=None, description="every invalid field (invalid-input)")
    retry_after: int | None = Field(default=None, description=(
        "seconds after which the same request may succeed (503 database-unavailable, storage-unavailable); "
        "the Retry-After header says the same"))
    run_id: UUID | None = Field(default=None, description=(
        "the turn concerned: the one running (turn-in-progress), the one that used this client_turn_id "
        "(client-turn-id-reused) or this upload (upload-used), the one that finished (turn-finished), the one "
        "that waits for the user's approval (turn-paused), the one decided on (turn-not-paused, approval-expired)"))
    run_status: Literal["completed", "failed", "cancelled", "running", "paused", "expired"] | None = Field(
        default=None, description="how the turn ended (turn-finished), or what it is doing (turn-not-paused)")
    pending: list[str] | None = Field(default=None, description=(
        "the tool_call_ids of a paused turn's pending calls: the decisions must name each once (invalid-input)"))
    month: str | None = Field(default=None, description="the budget's month, YYYY-MM (budget-exceeded)")
    monthly_budget_zar: DecimalString | None = Field(default=None, examples=RANDS,
                                                     description="the budget in rands (budget-exceeded)")
    spent_zar: DecimalString | None = Field(default=None, examples=RANDS,
                                            description="spent this month (budget-exceeded)")
    reserved_zar: DecimalString | None = Field(default=None, examples=RANDS, description=(
        "held by the user's running turns (budget-exceeded)"))
    reservation_zar: DecimalString | None = Field(default=None, examples=RANDS, description=(
        "the most this turn could cost (budget-exceeded)"))
    limit: Literal["turns-per-minute", "turns-per-day", "tokens-per-day", "concurrent-turns",
                   "requests-per-minute"] | None = Field(
        default=None, description="the limit that refused the request (rate-limited): one of the plan's (a turn), "
                                  "or requests-per-minute (any other route)")
    limit_value: int | None = Field(default=None, description="that limit's quota (rate-limited)")
    plan: str | None = Field(default=None, description="the caller's plan (rate-limited, not-in-plan)")
    estimated_tokens: int | None = Field(default=None, description="what the message needs (context-too-large)")
    max_tokens: int | None = Field(default=None, description="what one model request may hold (context-too-large)")
    reason: Literal["not-a-pdf", "corrupt", "encrypted", "too-many-pages"] | None = Field(default=None, description=(
        "why a PDF was refused (invalid-document)"))
    pages: int | None = Field(default=None, description="the refused PDF's page count (invalid-document, too-many-pages)")
    max_pages: int | None = Field(default=None, description=(
        "the most pages a PDF may have, DOCUMENT_MAX_PAGES (invalid-document, too-many-pages)"))


# ---- the mobile API's responses


class RenameSession(Strict):
    title: Annotated[str, StringConstraints(min_length=1), AtMost("max_title_chars")] = Field(
        description="the new title", json_schema_extra=_with_pattern)

    @model_validator(mode="after")
    def no_nul(self) -> "RenameSession":
        _no_nul(self.title)
        return self


class SessionSummary(SessionOut):
    updated_at: datetime


class Money(BaseModel):
    usd: DecimalString = Field(description="US dollars, a decimal string")
    zar: DecimalString = Field(description="South African rand, a decimal string")


class TurnCancelRequested(BaseModel):
    run_id: UUID
    status: Literal["cancelling"] = Field(description=(
        "the stop is recorded; the turn's stream ends with TurnCancelled within about a second"))


class ResumeTokenOut(BaseModel):
    """A browser's resume of one turn's stream (docs/api.md, Browsers)."""

    token: str = Field(description=(
        "open GET /sessions/{session_id}/turns/{run_id}/events?token=<it> (an EventSource: no Authorization "
        "header); for this turn only; never logged"))
    expires_in: int = Field(description="seconds it opens the stream for (a stream opened in time runs to its end)")
    expires_at: datetime


class SessionDetail(SessionSummary):
    turns: int
    turn_running: bool
    turn_paused: TurnPausedOut | None = Field(default=None, description=(
        "the turn that waits for the user's approval (its pending calls: the approval card), absent otherwise"))
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


class DocumentOut(BaseModel):
    """A PDF a user sent with a message."""

    id: str | None = None
    name: str | None = Field(default=None, description="the file name the app gave it (documents[].name), if any")
    mime_type: str | None = Field(default=None, description="application/pdf")
    pages: int | None = Field(default=None, description="its page count, as read when it arrived")
    size: int | None = Field(default=None, description="bytes")
    url: str = Field(description="short-lived presigned URL of the PDF as sent (see expires_in)")
    expires_in: int = Field(description="seconds the URL stays valid")


class CitationOut(BaseModel):
    """A source an answer cites (a web search result: an agent that searches the web)."""

    url: str = Field(description="the cited page")
    title: str | None = Field(default=None, description="the page's title")
    cited_text: str | None = Field(default=None, description="the text of the page the answer relies on")


class MessageUsage(TokenCounts):
    reasoning_tokens: int = Field(default=0, description=(
        "the part of output_tokens spent thinking (extended thinking; our estimate: the API bills thinking as "
        "output and reports no split); priced with output_tokens"))


class ThinkingOut(BaseModel):
    """One thinking block of an assistant message (an agent that thinks: extended thinking)."""

    text: str | None = Field(description="what the model thought (the summary the API returns); null when redacted")
    redacted: bool = Field(description="the API encrypted this block (safety): nothing to show but that it thought")


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
    documents: list[DocumentOut] = Field(default_factory=list, description="the PDFs a user message holds")
    model_id: str | None = None
    usage: MessageUsage
    cost: Money
    created_at: datetime
    citations: list[CitationOut] = Field(default_factory=list, description=(
        "the sources an assistant message's answer cites (web search results), in order; empty without any"))
    thinking: list[ThinkingOut] | None = Field(default=None, description=(
        "an assistant message's thinking, in order: only with ?include=thinking (null otherwise); always in an export"))


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class AgentOut(BaseModel):
    name: str
    description: str
    model_provider: str
    model_id: str
    tools: list[str]
    thinking: bool = Field(default=False, description=(
        "it thinks before answering: its turns stream Thinking* events (shown in GET /messages with "
        "?include=thinking)"))
    web_search: bool = Field(default=False, description=(
        "it searches the web: its answers may stream Citations, and each search is billed (the turn's location "
        "is used)"))
    approval_tools: list[str] = Field(default_factory=list, description=(
        "its tools that act only with the user's approval (a call pauses the turn: TurnPaused)"))


class TeamOut(BaseModel):
    name: str
    description: str
    model_provider: str
    model_id: str
    members: list[str]
    thinking: bool = Field(default=False, description="its leader thinks before answering (see AgentOut)")


class UsageRow(TokenCounts):
    cost: Money
    web_searches: int = Field(default=0, description="web searches the model made (Anthropic's web search tool)")
    web_search_cost: Money | None = Field(default=None, description=(
        "the web searches' part of cost (USD 10 per 1,000 searches today, from the pinned price data)"))


class UsageDay(UsageRow):
    day: str


class UsageByAgent(UsageRow):
    kind: Literal["agent", "team"]
    name: str


class UsageTotals(UsageRow):
    turns: int
    failed_turns: int


class BudgetWarningOut(BaseModel):
    percent: Literal[80, 100]
    spent_zar: DecimalString = Field(examples=RANDS, description="the month's spend when it was reached")
    at: datetime = Field(description="when the turn that reached it was stored")


class BudgetOut(BaseModel):
    month: str
    monthly_budget_zar: DecimalString = Field(examples=RANDS)
    spent_zar: DecimalString = Field(examples=RANDS)
    reserved_zar: DecimalString = Field(examples=RANDS, description=(
        "held by running turns until they are stored (the most they may cost)"))
    remaining_zar: DecimalString = Field(examples=RANDS, description="budget - spent - reserved, never below 0.00")
    warnings: list[BudgetWarningOut] = Field(default_factory=list, description=(
        "the month's budget warnings: 80 and 100 % of the budget reached (each also sent as the turn's "
        "BudgetWarning event)"))


class PlanLimitOut(BaseModel):
    """One rate limit of the caller's plan, as it stands now."""

    name: Literal["turns-per-minute", "turns-per-day", "tokens-per-day", "concurrent-turns"]
    limit: int = Field(description="the most the plan allows in the window")
    used: int = Field(description=(
        "counted now: turns started in the window (tokens: the stored rows' input and output tokens of the "
        "UTC day, plus what running turns hold; concurrent-turns: turns running)"))
    remaining: int = Field(description="limit - used, never below 0; at 0 a turn is refused (429 rate-limited)")
    window_seconds: int | None = Field(default=None, description="60 or 86400 (a UTC day); none for concurrent-turns")
    reset_seconds: int = Field(description="seconds until the limit frees up (its Retry-After when refused)")


class PlanOut(BaseModel):
    """The caller's plan: its budget, what it allows, its rate limits and what is left of each."""

    name: str
    monthly_budget_zar: DecimalString | None = Field(default=None, examples=RANDS, description=(
        "the plan's monthly budget in rands (none: no budget); a budget set for the user overrides it (budget)"))
    agents: list[str] | None = Field(default=None, description="the agents and teams allowed (none: all)")
    models: list[str] | None = Field(default=None, description="the models allowed (none: all)")
    thinking_allowed: bool
    web_search_allowed: bool
    limits: list[PlanLimitOut] = Field(description="the plan's rate limits (none: no limits)")


class UsageOut(BaseModel):
    start: str = Field(alias="from")
    to: str
    totals: UsageTotals
    by_day: list[UsageDay]
    by_agent: list[UsageByAgent]
    budget: BudgetOut | None = None
    plan: PlanOut | None = None

    model_config = ConfigDict(populate_by_name=True)


class EstimateAmount(BaseModel):
    usd: DecimalString
    zar: DecimalString = Field(description="the same in rands, at the day's USD/ZAR rate")


class EstimateCosts(BaseModel):
    low: EstimateAmount = Field(description="one model call, the prompt cache read, a short answer")
    likely: EstimateAmount = Field(description=(
        "the first model call (the prompt cache read when it is still warm, `cache_warm`; the session's usual "
        "answer), plus the calls the agent's or team's recent turns made past it (tool loops, members' calls) "
        "and their web searches; a message asking to remember or forget counts its memory tool's loop"))
    likely_without_cache: EstimateAmount = Field(description="`likely` with nothing read from the prompt cache")
    high: EstimateAmount = Field(description=(
        "the most the turn may cost: what a turn reserves of the budget (every model call it may make, its "
        "whole input uncached, the longest answer)"))


class EstimateTokens(BaseModel):
    prompt: int = Field(description="the estimated input tokens of the turn's (first) model call")
    new: int = Field(description="what the message adds: its text, photos and PDF pages")
    cache_read: int = Field(description="the part of `prompt` read from the prompt cache in `likely`")
    output: int = Field(description="the estimated output tokens (the session's recent average)")


class EstimateCalls(BaseModel):
    likely: int = Field(description="model calls in likely, rounded (low counts one)")
    high: int = Field(description="model calls in high (MAX_MODEL_CALLS_PER_TURN)")


class EstimateBudget(BaseModel):
    monthly_budget_zar: DecimalString = Field(examples=RANDS)
    spent_zar: DecimalString
    reserved_zar: DecimalString = Field(description="held by the user's running turns")
    left_zar: DecimalString


class TurnEstimate(BaseModel):
    """What a turn with this body would cost now (POST /sessions/{id}/turns/estimate): nothing was run or stored."""

    session_id: UUID
    model_id: str
    cost: EstimateCosts
    tokens: EstimateTokens
    cache_warm: bool = Field(description="the session's last model call is within PROMPT_CACHE_TTL")
    model_calls: EstimateCalls
    budget: EstimateBudget | None = Field(description="the month's budget (the user's own, else their plan's); none: no budget")
    refusal: Problem | None = Field(description=(
        "the problem the turn would be refused with now (not-in-plan 403, rate-limited 429 with `limit` and "
        "`retry_after`, budget-exceeded 402); none: it would run"))


class AccountDeletion(BaseModel):
    """The caller's account deletion (DELETE /me, GET /me/deletion)."""

    status: Literal["deleting", "deleted"] = Field(description=(
        "deleted: nothing of the account remains but its usage, with no user; deleting: the account is "
        "already unreadable, and its deletion goes on (poll GET /me/deletion until it is 404)"))
    requested_at: datetime | None = Field(default=None, description="when the deletion was asked for")
    sessions_left: int = Field(default=0, description="sessions not deleted yet")
    running_turns: int = Field(default=0, description="turns still stopping (asked to stop when the deletion began)")


class ExportContents(BaseModel):
    sessions: int
    messages: int
    photos: int
    uploads: int
    memories: int = Field(default=0, description="memories in memories.json (0 in an export made before they existed)")
    reminders: int = Field(default=0, description="reminders in actions.json (0 in an export made before they existed)")
    approvals: int = Field(default=0, description="approvals asked of the user, in actions.json (0 in an export made "
                                                  "before they existed)")
    devices: int = Field(default=0, description="phones registered for push notifications, in devices.json (0 in an "
                                                "export made before they existed)")
    documents: int = Field(default=0, description="PDF documents of the sessions, under documents/ (0 in an export "
                                                  "made before they existed)")


class AccountExport(BaseModel):
    """An export of everything stored about the caller (POST /me/export, GET /me/export)."""

    id: UUID
    status: Literal["building", "ready", "failed"]
    requested_at: datetime
    finished_at: datetime | None = None
    url: str | None = Field(default=None, description="when ready: a short-lived presigned URL of the zip")
    url_expires_in: int | None = Field(default=None, description="seconds the URL stays valid (GET again for a new one)")
    expires_at: datetime | None = Field(default=None, description="when the zip is deleted (a day after it is ready)")
    size: int | None = Field(default=None, description="the zip's bytes")
    contents: ExportContents | None = None
    error: str | None = Field(default=None, description="why it failed (POST /me/export again)")


# ---- memories (GET, PATCH, DELETE /me/memories) and the user's settings (/me/settings)

# A memory's text: no NUL, and some character that is not whitespace.
MEMORY_TEXT_PATTERN = "^[^\\x00]*[^\\x00\\s][^\\x00]*$"


class MemoryOut(BaseModel):
    """Something the assistant remembers about the caller, recalled at the start of every new session."""

    id: UUID
    text: str = Field(description="one line, as recalled")
    session_id: UUID | None = Field(description=(
        "the session whose turn wrote it; null once that session is deleted (the memory stays)"))
    run_id: UUID | None = Field(description=(
        "the turn that wrote it, or the consolidation run of a turn that merged memories; null once its "
        "session is deleted"))
    created_at: datetime
    updated_at: datetime


class MemoryPage(BaseModel):
    items: list[MemoryOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


def _memory_text(schema: dict) -> None:
    schema["pattern"] = MEMORY_TEXT_PATTERN


class EditMemory(Strict):
    text: Annotated[str, AfterValidator(_no_nul), StringConstraints(min_length=1, pattern=r"\S"),
                    AtMost("memory_max_chars")] = Field(json_schema_extra=_memory_text, description=(
        "the memory's new text, at most MEMORY_MAX_CHARS (default 500) characters; line breaks become "
        "spaces. 422 when the memories would then exceed MEMORY_MAX_TOKENS; 409 memory-exists when another "
        "memory already says it"))


class UserSettings(Strict):
    """The caller's settings."""

    memory: StrictBool = Field(description=(
        "whether the assistant remembers you across sessions (default true). false: nothing is written to "
        "memory and nothing is recalled; what is stored stays (GET, PATCH, DELETE /me/memories) and is "
        "recalled again once it is true"))
    push_preview: StrictBool = Field(default=False, description=(
        "whether a push notification's lock-screen text previews the answer (its first ~100 characters) or the "
        "action waiting for approval (default false: a generic text, no chat content). Like every field of PUT, "
        "left out it is set to its default"))


# ---- a paused turn: the user's decision on its pending calls, and what a session shows of it


class DecisionIn(Strict):
    """The user's decision on one pending call of a paused turn (its TurnPaused event's ``pending``)."""

    tool_call_id: Annotated[Text, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the pending call's tool_call_id")
    approved: bool = Field(description="true: the call runs; false: the model is told the user declined it")
    note: Annotated[Text, StringConstraints(max_length=500)] | None = Field(default=None, description=(
        "what the user adds (at most 500 characters); the model reads it with a declined call's result"))


class ApprovalsIn(Strict):
    decisions: list[DecisionIn] = Field(min_length=1, max_length=20, description=(
        "one decision per pending call of the paused turn, each call exactly once (else 422)"))


class PendingCallOut(BaseModel):
    tool_call_id: str
    tool: str
    arguments: dict[str, Any]
    summary: str = Field(description="one line for the user, written by the tool's spec (not the model)")
    agent_name: str | None = Field(default=None, description="a team's member that made the call")


class TurnPausedOut(BaseModel):
    """The session's turn that waits for the user's approval: the app's approval card."""

    run_id: UUID
    paused_at: datetime
    expires_at: datetime = Field(description="APPROVAL_TTL after the pause: a later decision is 409 approval-expired")
    pending: list[PendingCallOut]


class ReminderOut(BaseModel):
    """A reminder the assistant set (set_reminder) once the user approved it."""

    id: UUID
    text: str
    due_at: datetime = Field(description="when it is due (UTC)")
    time_zone: str = Field(description="the time zone its time of day was given in")
    session_id: UUID | None = Field(description="the session that set it; null once that session is deleted")
    run_id: UUID | None = Field(description="the turn that set it; null once its session is deleted")
    created_at: datetime


class ReminderPage(BaseModel):
    items: list[ReminderOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


# ---- the caller's phones, for push notifications (POST, GET /me/devices, DELETE /me/devices/{id})

DevicePlatform = Literal["apns", "apns_sandbox", "fcm"]


class DeviceIn(Strict):
    """A phone (an app install) that receives push notifications."""

    platform: DevicePlatform = Field(description=(
        "apns (an iOS app from the App Store or TestFlight), apns_sandbox (a development build), fcm (Android)"))
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[!-~]+$")] = Field(
        description="the platform's device token (APNs: hex; FCM: the registration token): printable ASCII, no spaces")
    app_version: Annotated[Text, StringConstraints(max_length=64)] | None = Field(
        default=None, description="the app's version, e.g. 2.4.1")
    locale: Annotated[str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,8}([_-][A-Za-z0-9]{1,8})*$")] | None = Field(
        default=None, description=("the device's language (BCP 47, e.g. af-ZA, en-US): the notifications' language "
                                   "(Afrikaans for af, English otherwise)"))


class DeviceOut(BaseModel):
    id: UUID
    platform: DevicePlatform
    token: str
    app_version: str | None
    locale: str | None
    push_enabled: bool = Field(description=(
        "whether pushes are sent to it: false when the deployment has no SNS platform application for its "
        "platform, or SNS could not be reached when it was registered (then it is tried at its first push)"))
    created_at: datetime
    updated_at: datetime


class DeviceList(BaseModel):
    items: list[DeviceOut]


SessionDetail.model_rebuild()  # its turn_paused is declared above it
