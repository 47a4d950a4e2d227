"""A member agent that does exact arithmetic."""

from chatcore.catalog.specs import AgentSpec
from chatcore.catalog.tools import calculator

SPEC = AgentSpec(
    name="calculator",
    description="Does exact arithmetic with a decimal calculator: budgets, splits, percentages.",
    model_id="claude-haiku-5-5",
    instructions=(
        "You do arithmetic for your team. Always use the calculator tool; never compute in your head.",
        "Answer with the result and the expression you evaluated.",
    ),
    tools=(calculator,),
)
