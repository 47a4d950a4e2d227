"""The events of a turn's stream, one pydantic model per event: the registry both the code that
emits events (``chatcore.wire.sse.payload`` checks each against its model, and the turn's final
event is built from one) and the OpenAPI document (each model a named schema; ``TurnEvent``, their
``oneOf`` with ``event`` as the discriminator, is what the stream routes carry) are made from.

A new event joins the registry by being declared: a subclass of ``TurnEventData`` whose ``event``
is one ``Literal`` name is registered as its class is made (``EVENTS``, in the order they are
declared). Nothing else lists the events.

Agno's events (``RunContent``, ``TeamToolCallStarted``, ...) are described by the members a client
reads; agno may send more of its own (``extra`` is allowed, and a generated type leaves room for
them), and leaves out a member it has no value for (an optional member is absent, never null). The
turn's final events (``TurnCompleted``, ``TurnFailed``, ``TurnCancelled``) are ours.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from chatcore.wire.schemas import CitationOut, DecimalString, Money, TokenCounts, absent_when_unset

# Every registered event's model, in the order they are declared (and by name).
EVENTS: list[type[TurnEventData]] = []
_BY_NAME: dict[str, type[TurnEventData]] = {}


class TurnEventData(BaseModel):
    """The ``data`` of one event of a turn's stream; ``event`` names it (the SSE ``event:`` too)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=absent_when_unset)

    event: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = name_of(cls)
        if name is not None:
            if name in _BY_NAME:
                raise TypeError(f"two events are called {name}: {_BY_NAME[name].__qualname__}, {cls.__qualname__}")
            EVENTS.append(cls)
            _BY_NAME[name] = cls


def name_of(model: type[BaseModel]) -> str | None:
    """The event a model is the data of: its ``event`` member's one ``Literal`` value (None for a base)."""
    annotation = model.model_fields["event"].annotation
    if get_origin(annotation) is Literal and len(get_args(annotation)) == 1:
        return get_args(annotation)[0]
    return None


def model_of(name: str) -> type[TurnEventData] | None:
    """The model of the event called ``name``; None for an event the registry does not know."""
    return _BY_NAME.get(name)


def event_names() -> list[str]:
    """Every registered event's name, in the order they are declared."""
    return list(_BY_NAME)


# ---- what agno's events carry: who ran, then what each kind of event adds


class _Agno(TurnEventData):
    created_at: int = Field(description="when agno made the event (Unix seconds)")
    run_id: str = Field(description="the run: the turn's own (X-Run-Id), or a team member's")
    session_id: str
    nested_depth: int | None = None


class _Agent(_Agno):
    agent_id: str = Field(description="the agent's name")
    agent_name: str = Field(description="the agent's name (a team's member: the member)")
    parent_run_id: str | None = Field(default=None, description="a team member's event: the team run (the turn)")


class _Team(_Agno):
    team_id: str = Field(description="the team's name")
    team_name: str


class _Model(BaseModel):
    model: str | None = Field(default=None, description="the model's id, e.g. claude-sonnet-5-5")
    model_provider: str | None = None


class _ModelCall(_Model):
    input_tokens: int | None = Field(default=None, description="input tokens, cache reads and writes excluded")
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token: float | None = Field(default=None, description="seconds")


class _Content(BaseModel):
    content: str | None = Field(default=None, description="the next piece of the answer's text")
    content_type: str | None = None
    reasoning_content: str | None = None
    model_provider_data: dict[str, Any] | None = None
    citations: dict[str, Any] | None = None


class ToolCall(BaseModel):
    """A tool call as agno reports it (a team leader's delegation is ``delegate_task_to_member``)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=absent_when_unset)

    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    tool_call_error: bool | None = Field(default=None, description="the call failed")
    result: str | None = Field(default=None, description="what the tool returned (ToolCallCompleted)")
    child_run_id: str | None = Field(default=None, description="a delegation: the member's run")


class _Tool(BaseModel):
    tool: ToolCall | None = None


class _Completed(BaseModel):
    content: str | None = Field(default=None, description="the run's whole answer")
    content_type: str | None = None
    metrics: dict[str, Any] | None = Field(default=None, description="agno's metrics of the run")
    model_provider_data: dict[str, Any] | None = None
    citations: dict[str, Any] | None = None


class _Error(BaseModel):
    content: str | None = Field(default=None, description="what failed, as the model API or agno said it")
    error_type: str | None = None


class _Cancelled(BaseModel):
    content: str | None = Field(default=None, description="what the run had answered when it was stopped")
    reason: str | None = None


# The agent's events (a team member's too, with parent_run_id), in the order a run sends them.
class RunStarted(_Model, _Agent):
    event: Literal["RunStarted"]


class ModelRequestStarted(_Model, _Agent):
    event: Literal["ModelRequestStarted"]


class RunContent(_Content, _Agent):
    event: Literal["RunContent"]


class ModelRequestCompleted(_ModelCall, _Agent):
    event: Literal["ModelRequestCompleted"]


class ToolCallStarted(_Tool, _Agent):
    event: Literal["ToolCallStarted"]


class ToolCallCompleted(_Tool, _Agent):
    event: Literal["ToolCallCompleted"]
    content: str | None = None


class ToolCallError(_Tool, _Agent):
    event: Literal["ToolCallError"]
    error: str | None = None


class RunContentCompleted(_Agent):
    event: Literal["RunContentCompleted"]


class RunCompleted(_Completed, _Agent):
    event: Literal["RunCompleted"]


class RunError(_Error, _Agent):
    event: Literal["RunError"]


class RunCancelled(_Cancelled, _Agent):
    """A stopped run's last event (no ``RunCompleted`` follows it)."""

    event: Literal["RunCancelled"]


# The team leader's events.
class TeamRunStarted(_Model, _Team):
    event: Literal["TeamRunStarted"]


class TeamModelRequestStarted(_Model, _Team):
    event: Literal["TeamModelRequestStarted"]


class TeamRunContent(_Content, _Team):
    event: Literal["TeamRunContent"]


class TeamModelRequestCompleted(_ModelCall, _Team):
    event: Literal["TeamModelRequestCompleted"]


class TeamToolCallStarted(_Tool, _Team):
    event: Literal["TeamToolCallStarted"]


class TeamToolCallCompleted(_Tool, _Team):
    event: Literal["TeamToolCallCompleted"]
    content: str | None = None


class TeamToolCallError(_Tool, _Team):
    event: Literal["TeamToolCallError"]
    error: str | None = None


class TeamRunContentCompleted(_Team):
    event: Literal["TeamRunContentCompleted"]


class TeamRunCompleted(_Completed, _Team):
    event: Literal["TeamRunCompleted"]
    member_responses: list[dict[str, Any]] | None = Field(default=None, description=(
        "each member run's answer: run_id, agent_id, agent_name, parent_run_id, content, content_type, status, "
        "metrics, model, model_provider, created_at (its messages are in GET /messages)"))


class TeamRunError(_Error, _Team):
    event: Literal["TeamRunError"]


class TeamRunCancelled(_Cancelled, _Team):
    """A stopped team run's last event (no ``TeamRunCompleted`` follows it)."""

    event: Literal["TeamRunCancelled"]


# ---- ours, during the turn


class MemoryUpdated(TurnEventData):
    """The assistant saved, changed or forgot what it remembers of the user (its memory tools), right
    after that tool call's ToolCallCompleted (TeamToolCallCompleted): for "Saved to memory · Undo"."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    event: Literal["MemoryUpdated"]
    action: Literal["saved", "updated", "forgotten", "consolidated"]
    session_id: str
    run_id: str = Field(description="the turn's run (X-Run-Id)")
    memory_id: str | None = Field(default=None, description=(
        "the memory saved, updated or forgotten (DELETE /me/memories/{memory_id} undoes a save)"))
    text: str | None = Field(default=None, description=(
        "the memory's text; for consolidated, the fact that was added"))
    previous_text: str | None = Field(default=None, description=(
        "updated: the text before (PATCH /me/memories/{memory_id} with it undoes the update)"))
    memory_ids: list[str] | None = Field(default=None, description=(
        "consolidated: the memories that replaced the earlier ones"))
    replaced: int | None = Field(default=None, description="consolidated: how many memories were merged")


class _Thinking(TurnEventData):
    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    session_id: str
    run_id: str = Field(description="the run that thinks: the turn's own, or a team member's")
    agent_name: str | None = Field(default=None, description="the agent (or the team's member) that thinks")
    team_name: str | None = Field(default=None, description="a team leader's thinking: the team")
    parent_run_id: str | None = Field(default=None, description="a team member's thinking: the team run (the turn)")


class ThinkingStarted(_Thinking):
    """The model began to think before its answer or its next tool call (an agent that thinks: extended
    thinking). ThinkingDelta events follow, then ThinkingCompleted."""

    event: Literal["ThinkingStarted"]


class ThinkingDelta(_Thinking):
    """The next piece of the model's thinking (the summary the API returns of it)."""

    event: Literal["ThinkingDelta"]
    text: str = Field(description="the next piece of the thinking's text")


class ThinkingCompleted(_Thinking):
    """The model finished thinking; its answer (RunContent) or its tool call follows."""

    event: Literal["ThinkingCompleted"]
    redacted: bool = Field(description=(
        "part of the thinking was encrypted by the API for safety (nothing of it is shown, no ThinkingDelta)"))


class Citations(TurnEventData):
    """The sources the model's answer cites (an agent that searches the web), sent once its model call
    ends, after the answer's RunContent. Agno's events never carry the citations or search results."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    event: Literal["Citations"]
    session_id: str
    run_id: str = Field(description="the run that answered: the turn's own, or a team member's")
    agent_name: str | None = Field(default=None, description="the agent (or the team's member) that answered")
    team_name: str | None = Field(default=None, description="a team leader's answer: the team")
    parent_run_id: str | None = Field(default=None, description="a team member's answer: the team run (the turn)")
    citations: list[CitationOut] = Field(description="each cited source, in the answer's order")


class BudgetWarning(TurnEventData):
    """This turn took the month's spend past 80 % or 100 % of the user's monthly budget (each once a
    month), sent just before the final event; the same warning is kept (GET /usage: budget.warnings)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    event: Literal["BudgetWarning"]
    session_id: str
    run_id: str
    percent: Literal[80, 100] = Field(description="the share of the budget reached")
    month: str = Field(description="the budget's month, YYYY-MM (UTC)")
    monthly_budget_zar: DecimalString = Field(description="the budget in rands")
    spent_zar: DecimalString = Field(description="this month's spend with this turn, in rands (to the cent)")


# ---- the turn's final event: exactly one ends every stream


class TurnUsage(TokenCounts):
    """The turn's tokens: every model call, a team's members included."""

    estimated: bool | None = Field(default=None, description=(
        "true when part of it is our estimate of a call the user stopped (the API reports no usage for it)"))
    web_searches: int | None = Field(default=None, description=(
        "the web searches its model calls ran, each billed on top of the tokens (in cost); absent when none, "
        "and on a final event rebuilt from the stored run (replayed)"))


class TurnErrorOut(BaseModel):
    code: str = Field(description=(
        "model-error:rate_limited, model-error:overloaded, model-error:unavailable (retryable), "
        "model-error:invalid_request, model-error:misconfigured, internal-error, storage-error, turn-timeout, "
        "abandoned"))
    message: str
    retryable: bool = Field(description="sending the turn again later may succeed")


class MemberError(BaseModel):
    """A team member's run that failed while the leader still answered."""

    run_id: str
    agent_name: str | None = None
    code: str
    message: str


def stored_pending() -> Any:
    """The ``stored`` member of a final event (and TurnPaused)."""
    return Field(default=None, description=(
        "\"pending\": the database was unreachable as the turn ended (a failover); the turn is spooled, "
        "durably, and stored as soon as it is back: its messages and cost then appear, and the events route "
        "replays this event without the field. Absent: the turn is stored"))


class _Final(TurnEventData):
    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    session_id: str
    run_id: str = Field(description="the turn's run (X-Run-Id)")
    usage: TurnUsage | None = Field(default=None, description="absent only when the turn could not be stored")
    cost: Money | None = Field(default=None, description="the turn's cost; absent only when it could not be stored")
    member_errors: list[MemberError] | None = Field(default=None, description=(
        "a team's members whose runs failed (absent on a final event rebuilt from the stored run)"))
    duration_ms: int | None = Field(default=None, description="absent on a final event rebuilt from the stored run")
    replayed: bool | None = Field(default=None, description=(
        "true on a final event rebuilt from the stored run (a turn that stored none: its instance ended, or "
        "the database was down as it ended)"))
    stored: Literal["pending"] | None = stored_pending()


class TurnCompleted(_Final):
    """The turn ended with an answer."""

    event: Literal["TurnCompleted"]
    tool_errors: int | None = Field(default=None, description="tool calls that failed (the model saw their error)")


class TurnCancelled(_Final):
    """The user stopped the turn (POST .../cancel): the answer so far is stored and is history."""

    event: Literal["TurnCancelled"]
    tool_errors: int | None = None


class TurnFailed(_Final):
    """The turn failed; model calls made before the failure are stored and charged."""

    event: Literal["TurnFailed"]
    error: TurnErrorOut


# ---- a turn that waits for the user's approval: its stream ends here, and goes on after the decision


class PendingCall(BaseModel):
    """A tool call that acts, waiting for the user's decision (the app's approval card)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    tool_call_id: str = Field(description="the call's id: the decision names it")
    tool: str = Field(description="the tool, e.g. set_reminder")
    arguments: dict[str, Any] = Field(description="the arguments the model gave it")
    summary: str = Field(description=(
        "one line for the user, written by the tool's spec from the arguments (not by the model), e.g. "
        "\"Remind you to call mom at 18:00 (Africa/Johannesburg)\""))
    agent_name: str | None = Field(default=None, description="a team's member that made the call")


class TurnPaused(TurnEventData):
    """The turn waits for the user's approval of the pending calls; its stream ends here. POST
    /sessions/{session_id}/turns/{run_id}/approvals with a decision per call streams the rest of the
    same run (the next event ids), from any device, until APPROVAL_TTL has passed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_when_unset)

    event: Literal["TurnPaused"]
    session_id: str
    run_id: str = Field(description="the turn's run (X-Run-Id): the decision's path names it")
    pending: list[PendingCall]
    expires_at: str = Field(description="when the pause expires (APPROVAL_TTL after it began), ISO 8601 UTC")
    usage: TurnUsage | None = Field(default=None, description="the turn's tokens so far (billed now)")
    cost: Money | None = Field(default=None, description="the turn's cost so far (billed now)")
    duration_ms: int | None = None
    stored: Literal["pending"] | None = stored_pending()
