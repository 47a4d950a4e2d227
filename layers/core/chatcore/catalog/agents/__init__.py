"""Agents defined in code, by name. A new agent is a new module here with a ``SPEC = AgentSpec(...)``,
listed in ``agent_specs``."""

from __future__ import annotations

from chatcore.catalog.specs import AgentSpec


def agent_specs() -> dict[str, AgentSpec]:
    """Every agent defined in code, by name."""
    from chatcore.catalog.agents import assistant, calculator, converter, organiser, researcher, thinker

    specs = [assistant.SPEC, calculator.SPEC, converter.SPEC, organiser.SPEC, researcher.SPEC, thinker.SPEC]
    return {s.name: s for s in specs}
