"""Each run of a turn (the turn's own run and member runs) followed through agno's events
(``RunTracker``), and the messages each run leaves to be stored, every model call with its
``TokenUsage``.

``usage_of`` is the one place that reads agno's metrics as tokens; from here to the database a
model call's usage is a ``TokenUsage``. Works on agno's event objects by their ``event`` name
(agent and team event classes share names) and imports nothing of agno but ``Message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from agno.models.message import Message
from uuid6 import uuid7

from chatcore.catalog.specs import MODEL_PROVIDER_SLUG
from chatcore.config import get_settings
from chatcore.media.agno_storage import storable_message
from chatcore.money.prices import TokenUsage
from chatcore.turns.outcome import RunError, TurnOutcome
from chatcore.wire.thinking import reasoning_tokens

if TYPE_CHECKING:
    from chatcore.money.cost import CostCalculator

LEADER_ERROR_EVENTS = {"RunError", "TeamRunError"}
CANCELLED_EVENTS = {"RunCancelled", "TeamRunCancelled"}
COMPLETED_EVENTS = {"RunCompleted", "TeamRunCompleted"}
CONTENT_EVENTS = {"RunContent", "TeamRunContent"}
TOOL_ERROR_EVENTS = {"ToolCallError", "TeamToolCallError"}
MODEL_CALL_EVENTS = {"ModelRequestCompleted", "TeamModelRequestCompleted"}
# A run paused on tool calls that need the user's approval (agno's confirmation): ours ends the
# stream with TurnPaused instead (chatcore.turns.approvals); agno's pause events are not forwarded.
PAUSED_EVENTS = {"RunPaused", "TeamRunPaused"}
NOT_FORWARDED = PAUSED_EVENTS | {"RunContinued", "TeamRunContinued"}


def usage_of(metrics: Any) -> TokenUsage:
    """Token usage of one model call from agno's metrics, an object or a dict (Claude's
    ``input_tokens`` excludes cache tokens; cache reads and writes are their own counts).

    Every cache breakpoint of a request uses ``PROMPT_CACHE_TTL`` (``turns.claude``), so with ``1h``
    every cache write of the call is a one-hour write (agno reports only their total)."""
    if metrics is None:
        return TokenUsage()
    get = (lambda k: metrics.get(k)) if isinstance(metrics, dict) else (lambda k: getattr(metrics, k, None))
    cache_write = int(get("cache_write_tokens") or 0)
    return TokenUsage(
        input_tokens=int(get("input_tokens") or 0),
        output_tokens=int(get("output_tokens") or 0),
        cache_read_tokens=int(get("cache_read_tokens") or 0),
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write if get_settings().prompt_cache_ttl == "1h" else 0,
        web_searches=web_searches_of(get("provider_metrics")),
    )


def web_searches_of(provider_metrics: Any) -> int:
    """The web searches a model call made, from agno's ``provider_metrics`` (the Messages API's
    ``usage.server_tool_use.web_search_requests``)."""
    server = (provider_metrics or {}).get("server_tool_use") if isinstance(provider_metrics, dict) else None
    return int((server or {}).get("web_search_requests") or 0) if isinstance(server, dict) else 0


# What the Messages API said, as the SDK's error text carries it (its status and error type), and the
# code a phone can act on: the first three are worth retrying later, the others are not.
_MODEL_ERRORS = (
    ("rate_limited", ("rate_limit_error", "error code: 429", "ratelimiterror")),
    ("overloaded", ("overloaded_error", "error code: 529")),
    ("unavailable", ("without message_stop", "api_error", "error code: 500", "error code: 502", "error code: 503", "error code: 504",
                     "timeout", "timed out", "connection error", "apiconnectionerror", "internalservererror")),
    ("invalid_request", ("invalid_request_error", "request_too_large", "error code: 400", "error code: 413",
                         "prompt is too long", "badrequesterror")),
    ("misconfigured", ("authentication_error", "permission_error", "not_found_error", "error code: 401",
                       "error code: 403", "error code: 404")),
)


def model_error_code(error_type: str | None, message: str) -> str:
    """``model-error:<kind>`` for a failed model call (``rate_limited``, ``overloaded``, ``unavailable``:
    retry later; ``invalid_request``, ``misconfigured``: a retry fails the same way); an error the
    text does not name keeps agno's ``error_type``."""
    text = f"{error_type or ''} {message}".lower()
    for kind, markers in _MODEL_ERRORS:
        if any(marker in text for marker in markers):
            return f"model-error:{kind}"
    return f"model-error:{error_type}" if error_type else "model-error"


@dataclass
class RunTracker:
    """Each run of a turn (the turn's own run and member runs) as agno's events tell it: its errors,
    model calls, cut calls and partial text, whether it was cancelled; ``see`` reads one event."""

    root_run_id: str
    outputs: list[Any] = field(default_factory=list)
    errors: dict[str, RunError] = field(default_factory=dict)
    tool_errors: int = 0
    agent_names: dict[str, str] = field(default_factory=dict)
    # every model call seen completing: run_id, usage; for runs that end without their output
    model_calls: list[tuple[str, TokenUsage]] = field(default_factory=list)
    # model calls whose stream was cut or aborted (a stop): run_id, our estimate of what was billed
    cut_calls: list[tuple[str, TokenUsage]] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)  # runs agno reported cancelled
    stopped: bool = False  # the user stopped the turn (POST .../cancel)
    # the text each run streamed since its last completed model call (a stopped call's partial answer)
    partial_text: dict[str, str] = field(default_factory=dict)
    # tool calls waiting for the user's approval (an agent's, or a team member's RunPaused): tool_call_id,
    # tool, arguments, call_run_id (the run that made the call), agent_name
    pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        """The turn paused for the user's approval (and was neither stopped nor failed)."""
        return bool(self.pending) and not self.stopped and self.error is None

    def see(self, event: Any) -> None:
        name = event.event
        run_id = getattr(event, "run_id", None) or self.root_run_id
        who = getattr(event, "agent_name", None) or getattr(event, "team_name", None)
        if who and run_id not in self.agent_names:
            self.agent_names[run_id] = who
        if name in LEADER_ERROR_EVENTS:
            error_type = getattr(event, "error_type", None)
            message = str(getattr(event, "content", "") or "")
            if not message.strip() and error_type == "model_provider_error":
                # a provider error without the API's answer: the stream stalled past MODEL_IDLE_TIMEOUT
                # or the connection dropped (a timeout's exception carries no text)
                message = "the model stopped answering (a stalled or dropped connection)"
                code = "model-error:unavailable"
            else:
                message = message or "the model call failed"
                code = model_error_code(error_type, message)
            self.errors[run_id] = RunError(code=code, message=message)
        elif name in TOOL_ERROR_EVENTS:
            self.tool_errors += 1
        elif name in MODEL_CALL_EVENTS:
            self.model_calls.append((run_id, usage_of(event)))
            self.partial_text.pop(run_id, None)
        elif name in CONTENT_EVENTS and isinstance(getattr(event, "content", None), str):
            self.partial_text[run_id] = self.partial_text.get(run_id, "") + event.content
        elif name in CANCELLED_EVENTS:
            self.cancelled.add(run_id)
        elif name == "RunPaused":  # an agent's run (the turn's own, or a team member's)
            known = {p["tool_call_id"] for p in self.pending}
            for tool in getattr(event, "tools", None) or []:
                if getattr(tool, "requires_confirmation", False) and tool.tool_call_id not in known:
                    self.pending.append({"tool_call_id": tool.tool_call_id, "tool": tool.tool_name,
                                         "arguments": dict(tool.tool_args or {}), "call_run_id": run_id,
                                         "agent_name": getattr(event, "agent_name", None) or self.agent_names.get(run_id)})

    def forwarded(self, event: Any) -> bool:
        """Whether agno's ``event`` goes on the turn's stream: all do but a run's ``RunCompleted``
        after its own ``RunCancelled`` (agno sends both). A stopped run ends with ``RunCancelled``,
        so a client that takes ``RunCompleted`` for a finished answer never shows a stopped one so."""
        if event.event in NOT_FORWARDED:
            return False
        return not (event.event in COMPLETED_EVENTS
                    and (getattr(event, "run_id", None) or self.root_run_id) in self.cancelled)

    def cancelled_runs(self) -> set[str]:
        """Runs stopped: reported cancelled by agno, or the whole turn when it was stopped (``stopped``)."""
        return self.cancelled | ({self.root_run_id} if self.stopped else set())

    @property
    def error(self) -> RunError | None:
        """The turn's own failure (a member's failure does not fail the turn)."""
        return self.errors.get(self.root_run_id)

    def output_of(self, run_id: str) -> Any:
        return next((o for o in self.outputs if getattr(o, "run_id", None) == run_id), None)


@dataclass
class RecordedMessage:
    """A message to store; ``usage`` is its model call's for an assistant message (None otherwise)."""

    message: Message
    usage: TokenUsage | None = None
    estimated: bool = False  # the usage is our estimate (an aborted stream), not the provider's report


@dataclass
class RunRecord:
    """The messages one run (the turn's, or a member's) produced, to be stored."""

    run_uuid: UUID
    agent_name: str | None
    model_id: str | None
    messages: list[RecordedMessage] = field(default_factory=list)
    error: RunError | None = None
    cancelled: bool = False  # stopped by the user: stored as ``cancelled``, its partial answer kept


def billed_calls(tracker: RunTracker, run_id: str) -> list[RecordedMessage]:
    """Assistant rows for the model calls of a run that ended without its output (a failed run, or
    one stopped before agno could end it).

    The provider bills every completed model call, so each becomes a row carrying its usage; a call
    cut or aborted midway becomes a row with our estimate, and the text it had streamed.
    """
    rows = [RecordedMessage(Message(role="assistant", content=None), usage)
            for call_run_id, usage in tracker.model_calls if call_run_id == run_id]
    cut = [usage for call_run_id, usage in tracker.cut_calls if call_run_id == run_id]
    for i, usage in enumerate(cut):
        text = tracker.partial_text.get(run_id) if i == len(cut) - 1 and run_id in tracker.cancelled_runs() else None
        rows.append(RecordedMessage(Message(role="assistant", content=text or None), usage, estimated=True))
    return rows


def with_cut_calls(messages: list[RecordedMessage], tracker: RunTracker, run_id: str) -> list[RecordedMessage]:
    """A stopped run's messages (agno's output) with what its aborted model call was billed: our
    estimate goes on the partial answer agno kept (an assistant message without usage), else on a
    row of its own."""
    for _, usage in (c for c in tracker.cut_calls if c[0] == run_id):
        target = next((m for m in reversed(messages) if m.message.role == "assistant" and not m.estimated
                       and (m.usage is None or m.usage == TokenUsage())), None)
        if target is None:
            messages.append(RecordedMessage(Message(role="assistant", content=None), usage, estimated=True))
        else:
            target.usage, target.estimated = usage, True
    return messages


def new_messages(output: Any, input_ids: set[str], *, skip_user: bool = False) -> list[RecordedMessage]:
    """The messages a run added: no system prompt, none of the input (history and our user message)."""
    return [RecordedMessage(m, usage_of(m.metrics) if m.role == "assistant" else None)
            for m in (output.messages or [])
            if m.role != "system" and m.id not in input_ids and not (skip_user and m.role == "user")]


def stopped_messages(messages: list[RecordedMessage], tracker: RunTracker, run_id: str) -> list[RecordedMessage]:
    """A stopped run's messages, fit to be history: its aborted call's billed estimate added
    (``with_cut_calls``), and tool calls stopped before their result dropped from the assistant
    message that made them (the Messages API refuses a ``tool_use`` without its ``tool_result``)."""
    shown = tracker.partial_text.get(run_id)
    last = next((m for m in reversed(messages) if m.message.role == "assistant"), None)
    if shown is not None and last is not None and not last.message.tool_calls:
        # agno's partial answer may hold a chunk it read but never sent: keep what the user saw
        last.message.content = shown
    answered = {m.message.tool_call_id for m in messages if m.message.role == "tool"}
    for m in messages:
        calls = m.message.tool_calls
        if m.message.role == "assistant" and calls:
            kept = [c for c in calls if c.get("id") in answered]
            m.message.tool_calls = kept or None
    return with_cut_calls(messages, tracker, run_id)


def run_messages(output: Any, tracker: RunTracker, run_id: str, input_ids: set[str], *,
                 skip_user: bool = False) -> list[RecordedMessage]:
    """The messages a run (agent, leader or member) leaves to store, from its output."""
    messages = new_messages(output, input_ids, skip_user=skip_user)
    if run_id in tracker.cancelled_runs():
        return stopped_messages(messages, tracker, run_id)
    return with_cut_calls(messages, tracker, run_id)


def priced_rows(record: RunRecord, *, session_id: UUID, costs: CostCalculator, now: datetime,
                client_disconnected: bool = False) -> tuple[TurnOutcome, list[dict[str, Any]]]:
    """A run's outcome (its status, tokens and cost) and the rows of its messages to store, each
    assistant message priced (``costs``) at ``now``; never the system prompt."""
    status = "failed" if record.error else "cancelled" if record.cancelled else "completed"
    run = TurnOutcome(session_id=session_id, run_id=record.run_uuid, status=status, error=record.error,
                      client_disconnected=client_disconnected)
    usage = TokenUsage()
    rows: list[dict[str, Any]] = []
    for recorded in record.messages:
        message = recorded.message
        if message.role == "system":
            continue
        fields: dict[str, Any] = {}
        if message.role == "assistant" and record.model_id:
            cost = costs.cost(record.model_id, recorded.usage or TokenUsage(), now)
            fields = costs.row_fields(cost)
            usage += cost.usage
            run.usage_estimated |= recorded.estimated
            fields["usage_estimated"] = recorded.estimated
        parts = storable_message(message, session_id)
        if message.role == "assistant":
            fields["reasoning_tokens"] = reasoning_tokens(parts, fields.get("output_tokens", 0))
            run.cost_usd += cost.usd
            run.cost_zar += cost.zar
        rows.append({
            "id": uuid7(), "session_id": session_id, "run_id": record.run_uuid,
            "role": message.role, "agent_name": record.agent_name,
            "model_provider_slug": MODEL_PROVIDER_SLUG if message.role == "assistant" else None,
            "model_id": record.model_id if message.role == "assistant" else None,
            "message_parts": parts, **fields,
        })
    run.usage = usage
    return run, rows
