"""Teams defined in code, by name: a leader model that delegates to member agents.

This module does not import agno, so functions that only list teams stay lean.
"""

from __future__ import annotations

from chatcore.catalog.agents import agent_specs
from chatcore.catalog.specs import TeamSpec


PLANNER = TeamSpec(
    name="planner",
    description="Plans budgets, recipes and trips: a leader that delegates sums to a calculator, "
                "unit conversions to a converter and reminders to an organiser.",
    model_id="claude-sonnet-5-5",
    instructions=(
        "You lead a small team in a mobile chat app and answer the user concisely.",
        "Delegate any arithmetic to the calculator member and any unit conversion to the converter member.",
        "Delegate reminders to the organiser member (the user approves each one).",
        "When the user sends a photo, use what it shows; members see the photo too.",
    ),
    members=("calculator", "converter", "organiser"),
    remembers=True,  # its recipes and plans need the user's diet, allergies, family; its members do not
)


NEWSDESK = TeamSpec(
    name="newsdesk",
    description="Answers questions about current events: a leader that thinks the question through and "
                "delegates web searches to a researcher (its sources are shown; each search is billed) and "
                "careful reasoning to a thinker.",
    model_id="claude-sonnet-5-5",
    instructions=(
        "You lead a small news desk in a mobile chat app and answer the user concisely.",
        "Delegate anything that needs current facts to the researcher member, who searches the web.",
        "Delegate calculations and careful step-by-step reasoning to the thinker member.",
    ),
    members=("researcher", "thinker"),
    thinking_budget=2048,  # the leader thinks before each delegation and its answer
)


def team_specs() -> dict[str, TeamSpec]:
    """Every team defined in code, by name; every member must be a defined agent."""
    specs = [PLANNER, NEWSDESK]
    agents = agent_specs()
    for spec in specs:
        missing = [m for m in spec.members if m not in agents]
        if missing:
            raise RuntimeError(f"team {spec.name!r} names undefined member agents: {missing}")
    return {s.name: s for s in specs}
