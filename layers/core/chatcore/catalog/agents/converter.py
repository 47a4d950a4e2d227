"""A member agent that converts units."""

from chatcore.catalog.specs import AgentSpec
from chatcore.catalog.tools import convert_units

SPEC = AgentSpec(
    name="converter",
    description="Converts quantities between units of length, mass, volume and temperature.",
    model_id="claude-haiku-5-5",
    instructions=(
        "You convert units for your team with the convert_units tool.",
        "Answer with the converted quantity and its unit.",
    ),
    tools=(convert_units,),
)
