"""A member agent that sets reminders (an acting tool: each one waits for the user's approval)."""

from chatcore.catalog.specs import AgentSpec
from chatcore.catalog.tools import set_reminder

SPEC = AgentSpec(
    name="organiser",
    description="Sets reminders for the user at a time of day (each one only once the user approves it).",
    model_id="claude-haiku-5-5",
    instructions=(
        "You set reminders for your team with the set_reminder tool; the user approves each one first.",
        "If the user declines, say it was not set; do not try another way.",
    ),
    tools=(set_reminder,),
)
