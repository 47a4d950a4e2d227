"""The conversation runtime of a session's agent or team, built once per process and reused."""

from __future__ import annotations

import threading

from chatcore.catalog.agents import agent_specs
from chatcore.catalog.teams import team_specs
from chatcore.errors import NotFound
from chatcore.turns.agent import AgentConversation, Conversation
from chatcore.turns.team import TeamConversation

_conversations: dict[str, Conversation] = {}
_lock = threading.Lock()


def forget_conversations() -> None:
    """Drop the built agents and teams (and the model clients they hold); rebuilt on next use."""
    with _lock:
        _conversations.clear()


def conversation_for(agent_name: str | None, team_name: str | None) -> Conversation:
    """The (process-wide, reused) conversation runtime of a session's agent or team."""
    key = f"agent:{agent_name}" if agent_name else f"team:{team_name}"
    with _lock:
        if key not in _conversations:
            if agent_name:
                spec = agent_specs().get(agent_name)
                if spec is None:
                    raise NotFound(f"agent {agent_name!r} is no longer defined")
                _conversations[key] = AgentConversation(spec)
            else:
                team = team_specs().get(team_name or "")
                if team is None:
                    raise NotFound(f"team {team_name!r} is no longer defined")
                _conversations[key] = TeamConversation(team)
        return _conversations[key]
