"""An assistant that thinks before it answers (extended thinking), with the assistant's tools."""

from chatcore.catalog.specs import AgentSpec
from chatcore.catalog.tools import calculator, convert_units, set_reminder

SPEC = AgentSpec(
    name="thinker",
    description="A careful assistant that thinks a question through before it answers (its reasoning can be "
                "shown), with exact arithmetic, unit conversions and reminders (each one once the user approves it).",
    model_id="claude-sonnet-5-5",
    instructions=(
        "You are a careful assistant in a mobile chat app: think the question through, then answer briefly.",
        "Use the calculator tool for any arithmetic and convert_units for conversions between units.",
        "Use set_reminder when the user asks to be reminded of something; the user approves it first.",
    ),
    tools=(calculator, convert_units, set_reminder),
    thinking_budget=4096,
)
