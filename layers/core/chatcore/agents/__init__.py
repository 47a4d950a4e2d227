"""Agents defined in code, by name. A new agent is a new module listed in ``AGENT_MODULES``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

MODEL_PROVIDER_SLUG = "anthropic"


@dataclass(frozen=True)
class AgentSpec:
    """What defines an agent: name, model, instructions and tools."""

    name: str
    description: str
    model_id: str
    instructions: tuple[str, ...]
    tools: tuple[Callable[..., Any], ...] = field(default_factory=tuple)

    def definition(self) -> dict[str, Any]:
        """The JSON recorded in the agents table."""
        return {
            "instructions": list(self.instructions),
            "tools": [t.__name__ for t in self.tools],
        }

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description,
            "model_provider_slug": MODEL_PROVIDER_SLUG, "model_id": self.model_id,
            "definition": self.definition(),
        }


def agent_specs() -> dict[str, AgentSpec]:
    """Every agent defined in code, by name."""
    from chatcore.agents import assistant, calculator, converter

    specs = [assistant.SPEC, calculator.SPEC, converter.SPEC]
    return {s.name: s for s in specs}
