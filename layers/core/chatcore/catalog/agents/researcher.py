"""An assistant that searches the web (Anthropic's web search server tool) and cites its sources."""

from chatcore.catalog.specs import AgentSpec, WebSearch
from chatcore.catalog.tools import calculator

SPEC = AgentSpec(
    name="researcher",
    description="An assistant that searches the web for current facts and answers with its sources "
                "(each search is billed), with exact arithmetic.",
    model_id="claude-sonnet-5-5",
    instructions=(
        "You are a concise research assistant in a mobile chat app.",
        "Search the web when the question needs current or specific facts, and cite the pages you use.",
        "Use the calculator tool for any arithmetic instead of doing it in your head.",
    ),
    tools=(calculator,),
    web_search=WebSearch(max_uses=3),
)
