"""Agents at run time: built once per process from their specs, and what a turn needs of them."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol
from uuid import UUID

from agno.agent import Agent
from agno.models.message import Message

from chatcore import db, storage
from chatcore.agents import AgentSpec, agent_specs
from chatcore.errors import NotFound
from chatcore.media import media_storage
from chatcore.models import claude
from chatcore.pricing import default_price_book


@dataclass
class RunRecord:
    """The messages one run (the turn's, or a member's) produced, to be stored."""

    run_uuid: UUID
    agent_name: str
    model_id: str | None
    messages: list[Message] = field(default_factory=list)


class Conversation(Protocol):
    """What a session talks to: an agent (or, later, a team)."""

    name: str

    def stream(self, *, history: list[Message], message: Message, run_id: str, session_id: str,
               user_id: str) -> AsyncIterator[Any]: ...

    def records(self, *, outputs: list[Any], input_ids: set[str], root_run_id: str,
                tracker: Any) -> list[RunRecord]: ...


def build_agent(spec: AgentSpec) -> Agent:
    """An Agno agent for ``spec``. No agno db: we store every message ourselves.

    ``store_media=False`` stops agno re-uploading images at the end of each run; the images are
    already in S3 and ``media_storage`` is still used to refresh references before model calls.
    """
    return Agent(
        id=spec.name,
        name=spec.name,
        model=claude(spec.model_id),
        instructions=list(spec.instructions),
        tools=list(spec.tools),
        media_storage=media_storage(),
        store_media=False,
        telemetry=False,
        markdown=False,
    )


def reconstruct_messages(tracker: Any, run_id: str) -> list[Message]:
    """Assistant rows for the model calls of a run that ended without its output (a failed run).

    Each completed model call is billed by the provider, so each becomes a row with its usage.
    """
    from agno.metrics import MessageMetrics

    messages = []
    for call in tracker.model_calls:
        if call["run_id"] != run_id:
            continue
        u = call["usage"]
        messages.append(Message(
            role="assistant", content=None,
            metrics=MessageMetrics(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                                   cache_read_tokens=u.cache_read_tokens,
                                   cache_write_tokens=u.cache_write_tokens,
                                   total_tokens=u.input_tokens + u.output_tokens),
        ))
    return messages


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

    def records(self, *, outputs, input_ids, root_run_id, tracker) -> list[RunRecord]:
        record = RunRecord(run_uuid=UUID(root_run_id), agent_name=self.name, model_id=self.spec.model_id)
        output = next((o for o in outputs if getattr(o, "run_id", None) == root_run_id), None)
        if output is not None and tracker.error is None:
            record.messages = [m for m in (output.messages or [])
                               if m.role != "system" and m.id not in input_ids]
        else:
            record.messages = reconstruct_messages(tracker, root_run_id)
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
                from chatcore.teams import team_conversation

                _conversations[key] = team_conversation(team_name)
        return _conversations[key]


@lru_cache(maxsize=1)
def price_ids() -> dict[str, UUID]:
    """price_key -> prices.id of the pinned price version, recorded once per process."""
    book = default_price_book()
    with db.connection() as conn:
        return storage.sync_prices(conn, book.price_rows(), book.version)


def sync_catalog() -> None:
    """Record the agents (and teams) defined in code and the pinned prices in the database."""
    with db.connection() as conn:
        storage.sync_agents(conn, [s.row() for s in agent_specs().values()])
        try:
            from chatcore.teams import sync_teams
        except ImportError:
            pass
        else:
            sync_teams(conn)
    price_ids()
