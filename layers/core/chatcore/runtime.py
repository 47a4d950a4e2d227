"""Agents and teams at run time: built from their specs, reused across requests, and what a turn
needs of them (their event stream and the messages each run produced)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from agno.agent import Agent
from agno.metrics import MessageMetrics
from agno.models.message import Message

from chatcore.agents import AgentSpec, agent_specs
from chatcore.costing import usage_from_metrics
from chatcore.errors import NotFound
from chatcore.media import media_storage
from chatcore.models import claude
from chatcore.pricing import TokenUsage

LEADER_ERROR_EVENTS = {"RunError", "TeamRunError"}


@dataclass
class RunError:
    code: str
    message: str


@dataclass
class EventTracker:
    """What the event stream says about each run of a turn (the turn's own run and member runs)."""

    root_run_id: str
    outputs: list[Any] = field(default_factory=list)
    errors: dict[str, RunError] = field(default_factory=dict)
    tool_errors: int = 0
    agent_names: dict[str, str] = field(default_factory=dict)
    # every model call seen completing: run_id, usage; for runs that end without their output
    model_calls: list[tuple[str, TokenUsage]] = field(default_factory=list)

    def see(self, event: Any) -> None:
        name = event.event
        run_id = getattr(event, "run_id", None) or self.root_run_id
        who = getattr(event, "agent_name", None) or getattr(event, "team_name", None)
        if who and run_id not in self.agent_names:
            self.agent_names[run_id] = who
        if name in LEADER_ERROR_EVENTS:
            error_type = getattr(event, "error_type", None)
            self.errors[run_id] = RunError(
                code="model-error" if not error_type else f"model-error:{error_type}",
                message=str(getattr(event, "content", "") or "the model call failed"),
            )
        elif name in ("ToolCallError", "TeamToolCallError"):
            self.tool_errors += 1
        elif name in ("ModelRequestCompleted", "TeamModelRequestCompleted"):
            self.model_calls.append((run_id, usage_from_metrics(event)))

    @property
    def error(self) -> RunError | None:
        """The turn's own failure (a member's failure does not fail the turn)."""
        return self.errors.get(self.root_run_id)

    def output_of(self, run_id: str) -> Any:
        return next((o for o in self.outputs if getattr(o, "run_id", None) == run_id), None)


@dataclass
class RunRecord:
    """The messages one run (the turn's, or a member's) produced, to be stored."""

    run_uuid: UUID
    agent_name: str
    model_id: str | None
    messages: list[Message] = field(default_factory=list)
    error: RunError | None = None


class Conversation(Protocol):
    """What a session talks to: an agent or a team."""

    name: str

    def stream(self, *, history: list[Message], message: Message, run_id: str, session_id: str,
               user_id: str) -> Any: ...

    def records(self, tracker: EventTracker, input_ids: set[str]) -> list[RunRecord]: ...


def build_agent(spec: AgentSpec) -> Agent:
    """An Agno agent for ``spec``. No agno db: we store every message ourselves.

    ``store_media=False`` stops agno re-uploading images at the end of each run; the images are
    already in S3 and ``media_storage`` is still used to refresh references before model calls.
    """
    return Agent(
        id=spec.name,
        name=spec.name,
        description=spec.description,
        model=claude(spec.model_id),
        instructions=list(spec.instructions),
        tools=list(spec.tools),
        media_storage=media_storage(),
        store_media=False,
        telemetry=False,
        markdown=False,
    )


def reconstruct_messages(tracker: EventTracker, run_id: str) -> list[Message]:
    """Assistant rows for the model calls of a run that ended without its output (a failed run).

    The provider bills every completed model call, so each becomes a row carrying its usage.
    """
    messages = []
    for call_run_id, u in tracker.model_calls:
        if call_run_id != run_id:
            continue
        messages.append(Message(
            role="assistant", content=None,
            metrics=MessageMetrics(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                                   cache_read_tokens=u.cache_read_tokens,
                                   cache_write_tokens=u.cache_write_tokens,
                                   total_tokens=u.input_tokens + u.output_tokens),
        ))
    return messages


def new_messages(output: Any, input_ids: set[str], *, skip_user: bool = False) -> list[Message]:
    """The messages a run added: no system prompt, none of the input (history and our user message)."""
    return [m for m in (output.messages or [])
            if m.role != "system" and m.id not in input_ids and not (skip_user and m.role == "user")]


class AgentConversation:
    """A session with one agent: the history is passed as ``List[Message]``."""

    def __init__(self, spec: AgentSpec):
        self.spec = spec
        self.name = spec.name
        self.agent = build_agent(spec)

    def stream(self, *, history, message, run_id, session_id, user_id):
        return self.agent.arun(
            input=[*history, message], stream=True, stream_events=True, yield_run_output=True,
            run_id=run_id, session_id=session_id, user_id=user_id,
        )

    def records(self, tracker: EventTracker, input_ids: set[str]) -> list[RunRecord]:
        root = tracker.root_run_id
        record = RunRecord(run_uuid=UUID(root), agent_name=self.name, model_id=self.spec.model_id,
                           error=tracker.error)
        output = tracker.output_of(root)
        if output is not None and tracker.error is None:
            record.messages = new_messages(output, input_ids)
        else:
            record.messages = reconstruct_messages(tracker, root)
        return [record]


_conversations: dict[str, Any] = {}
_conversations_lock = threading.Lock()


def conversation_for(agent_name: str | None, team_name: str | None) -> Any:
    """The (process-wide, reused) conversation runtime of a session's agent or team."""
    key = f"agent:{agent_name}" if agent_name else f"team:{team_name}"
    with _conversations_lock:
        if key not in _conversations:
            if agent_name:
                spec = agent_specs().get(agent_name)
                if spec is None:
                    raise NotFound(f"agent {agent_name!r} is no longer defined")
                _conversations[key] = AgentConversation(spec)
            else:
                from chatcore.team_runtime import TeamConversation
                from chatcore.teams import team_specs

                spec = team_specs().get(team_name or "")
                if spec is None:
                    raise NotFound(f"team {team_name!r} is no longer defined")
                _conversations[key] = TeamConversation(spec)
        return _conversations[key]
