"""What defines an agent or a team in code, and the row that records it in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Every model here is Anthropic's; messages, agents and teams record the provider by this slug.
MODEL_PROVIDER_SLUG = "anthropic"


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    model_id: str
    instructions: tuple[str, ...]

    def definition(self) -> dict[str, Any]:
        """The JSON recorded in the ``definition`` column."""
        return {"instructions": list(self.instructions)}

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "model_provider_slug": MODEL_PROVIDER_SLUG,
                "model_id": self.model_id, "definition": self.definition()}


@dataclass(frozen=True)
class AgentSpec(Spec):
    """An agent: name, model, instructions and tools."""

    tools: tuple[Callable[..., Any], ...] = field(default_factory=tuple)
    # remembers the user across sessions (while the user has memory on): the memory tools, and the
    # recall at the start of its input (chatcore.turns.memory); as a team member too
    remembers: bool = False

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "tools": [t.__name__ for t in self.tools]}


@dataclass(frozen=True)
class TeamSpec(Spec):
    """A team: a leader model that delegates to member agents."""

    members: tuple[str, ...] = ()  # agent names, in the order the leader sees them
    remembers: bool = False  # the leader remembers the user (see AgentSpec.remembers)

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "members": list(self.members)}

    def row(self) -> dict[str, Any]:
        return {**super().row(), "members": list(self.members)}
