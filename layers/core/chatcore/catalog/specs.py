"""What defines an agent or a team in code, and the row that records it in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Every model here is Anthropic's; messages, agents and teams record the provider by this slug.
MODEL_PROVIDER_SLUG = "anthropic"
# The Messages API's smallest thinking budget.
MIN_THINKING_BUDGET = 1024


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    model_id: str
    instructions: tuple[str, ...]
    # extended thinking (off by default): the most tokens a model call may think for. A model that
    # takes a budget gets it; one that thinks adaptively (the Claude 5 family) gets adaptive thinking
    # (chatcore.turns.claude). Thinking tokens are output tokens: a budget reservation counts them.
    thinking_budget: int | None = None

    def __post_init__(self) -> None:
        if self.thinking_budget is not None and self.thinking_budget < MIN_THINKING_BUDGET:
            raise ValueError(f"{self.name}: thinking_budget must be at least {MIN_THINKING_BUDGET} tokens")

    def definition(self) -> dict[str, Any]:
        """The JSON recorded in the ``definition`` column."""
        return {"instructions": list(self.instructions),
                **({"thinking_budget": self.thinking_budget} if self.thinking_budget else {})}

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "model_provider_slug": MODEL_PROVIDER_SLUG,
                "model_id": self.model_id, "definition": self.definition()}


# Anthropic's web search server tool (the version this code sends and the stand-in checks).
WEB_SEARCH_TOOL = "web_search_20250305"


@dataclass(frozen=True)
class WebSearch:
    """An agent's web search (Anthropic's server tool, run by the API; off unless a spec sets it):
    at most ``max_uses`` searches per model call, only in ``allowed_domains`` or never in
    ``blocked_domains`` (not both). Each search is billed on top of the tokens (the price data's
    per-search price); a budget reservation counts ``max_uses`` per model call. A turn's ``location``
    (what the app sends: country, region, city, time zone; never stored) is added to the request's copy
    as ``user_location`` (``turns.claude.located``)."""

    max_uses: int = 3
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_uses < 1:
            raise ValueError("WebSearch.max_uses must be at least 1")
        if self.allowed_domains and self.blocked_domains:
            raise ValueError("WebSearch takes allowed_domains or blocked_domains, not both")

    def tool(self) -> dict[str, Any]:
        """The request's tool definition (agno passes a non-function tool to the API as it is)."""
        return {"type": WEB_SEARCH_TOOL, "name": "web_search", "max_uses": self.max_uses,
                **({"allowed_domains": list(self.allowed_domains)} if self.allowed_domains else {}),
                **({"blocked_domains": list(self.blocked_domains)} if self.blocked_domains else {})}


def web_searches_per_call(spec: "Spec") -> int:
    """The most web searches one model call of ``spec`` may make (0: it cannot search)."""
    search = getattr(spec, "web_search", None)
    return search.max_uses if search else 0


def requires_approval(summary: Callable[..., str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a tool that acts (books, sends, sets a reminder): the model's call pauses the turn until
    the user approves or declines it (agno's confirmation, ``chatcore.turns.agent``). ``summary`` is
    the tool spec's one-line human summary of a call, from its arguments (never written by the
    model): what the app's approval card shows. Read-only tools stay automatic (unmarked)."""

    def mark(tool: Callable[..., Any]) -> Callable[..., Any]:
        tool.requires_approval = True  # type: ignore[attr-defined]
        tool.approval_summary = summary  # type: ignore[attr-defined]
        return tool

    return mark


def needs_approval(tool: Callable[..., Any]) -> bool:
    """Whether the model's call of ``tool`` waits for the user's approval (``requires_approval``)."""
    return bool(getattr(tool, "requires_approval", False))


def summary_of(tool: Callable[..., Any], arguments: dict[str, Any]) -> str:
    """The one-line summary of a call of an acting tool, written by its spec (its name and arguments
    when the arguments do not fit its parameters: the model may send anything)."""
    try:
        return str(tool.approval_summary(**arguments))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the card still says what would run
        return f"{tool.__name__}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"[:300]


@dataclass(frozen=True)
class AgentSpec(Spec):
    """An agent: name, model, instructions and tools."""

    tools: tuple[Callable[..., Any], ...] = field(default_factory=tuple)
    # remembers the user across sessions (while the user has memory on): the memory tools, and the
    # recall at the start of its input (chatcore.turns.memory); as a team member too
    remembers: bool = False
    web_search: WebSearch | None = None  # Anthropic's web search server tool (off by default)

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "tools": [t.__name__ for t in self.tools],
                **({"web_search": self.web_search.tool()} if self.web_search else {}),
                **({"approval": [t.__name__ for t in self.tools if needs_approval(t)]}
                   if any(needs_approval(t) for t in self.tools) else {})}

    def tool(self, name: str) -> Callable[..., Any] | None:
        """Its tool called ``name`` (None: not one of its tools)."""
        return next((t for t in self.tools if t.__name__ == name), None)


@dataclass(frozen=True)
class TeamSpec(Spec):
    """A team: a leader model that delegates to member agents."""

    members: tuple[str, ...] = ()  # agent names, in the order the leader sees them
    remembers: bool = False  # the leader remembers the user (see AgentSpec.remembers)

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "members": list(self.members)}

    def row(self) -> dict[str, Any]:
        return {**super().row(), "members": list(self.members)}
