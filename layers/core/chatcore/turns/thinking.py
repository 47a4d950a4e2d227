"""A turn's thinking as the app sees it stream (extended thinking: an agent or member whose spec has a
``thinking_budget``).

agno passes the model's thinking on inside its content events (``RunContent``'s
``reasoning_content``, the encrypted data of a redacted block in ``redacted_reasoning_content``, the
signature and the final content blocks in ``model_provider_data``; a redacted block's encrypted data
as thinking text too: ``turns.claude`` notes each one as its stream starts). ``ThinkingStream`` turns that
into our own events: ``ThinkingStarted``, ``ThinkingDelta`` (the thinking's text, or the summary the
API returns), ``ThinkingCompleted`` (``redacted``: part of it was encrypted by the API), and leaves
agno's events without any of it: no signature and no encrypted data ever reach the phone, and a
content event that carried only thinking is not sent. What is stored is the model's message as it
came (``wire.thinking``), not these events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chatcore.turns.tracking import CONTENT_EVENTS
from chatcore.wire.citations import streamed_citations

STARTED, DELTA, COMPLETED = "ThinkingStarted", "ThinkingDelta", "ThinkingCompleted"
CITATIONS = "Citations"  # not thinking, but read from the same events (the answer's web sources)
# what agno's events carry of the thinking (never streamed)
_THINKING_KEYS = ("reasoning_content", "redacted_reasoning_content")
_PROVIDER_KEYS = ("signature", "content_blocks", "server_tool_blocks")  # and the search results


@dataclass
class _Thinking:
    redacted: bool = False


@dataclass
class ThinkingStream:
    """Each run's thinking in progress (by run id), read from agno's events in order."""

    open: dict[str, _Thinking] = field(default_factory=dict)
    redacted: set[str] = field(default_factory=set)  # the turn's redacted blocks' data (CallLog.redacted)

    def events(self, event: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """The turn's events for agno's ``event``: ours about its thinking, then agno's own without it
        (nothing when it carried only thinking)."""
        data = event.to_dict()
        run_id = data.get("run_id")
        who = {k: data[k] for k in ("session_id", "run_id", "agent_name", "team_name", "parent_run_id") if data.get(k)}
        text, redacted = data.get("reasoning_content"), data.get("redacted_reasoning_content")
        if text and (text == redacted or text in self.redacted):
            text, redacted = None, True  # a redacted block's encrypted data, which agno passes as text
        content = data.get("content")
        thinking_only = False
        if event.event in CONTENT_EVENTS:
            if text or redacted:
                state = self.open.get(run_id)
                if state is None:
                    state = self.open[run_id] = _Thinking()
                    yield STARTED, who
                state.redacted |= bool(redacted)
                if text:
                    yield DELTA, {**who, "text": text}
            provider = data.get("model_provider_data") or {}
            thinking_only = (not content and bool(text or redacted or data.get("citations")
                                                  or any(k in provider for k in _PROVIDER_KEYS)))
        if run_id in self.open and not (event.event in CONTENT_EVENTS and not content):
            yield COMPLETED, {**who, "redacted": self.open.pop(run_id).redacted}
        if not thinking_only:
            yield event.event, without_thinking(data)
        sources = streamed_citations(data) if event.event in CONTENT_EVENTS else []
        if sources:  # the answer's web sources, once its model call ended (wire.citations)
            yield CITATIONS, {**who, "citations": [c.model_dump() for c in sources]}


# what a team's completed event keeps of each member's run: agno sends the whole run (its input, messages
# with their signed thinking and encrypted search results, recall, events), which the member's own
# events and GET /messages already show without any of that
MEMBER_RESPONSE_KEYS = ("run_id", "agent_id", "agent_name", "parent_run_id", "content", "content_type", "status",
                        "metrics", "model", "model_provider", "created_at")


def without_thinking(data: dict[str, Any]) -> dict[str, Any]:
    """agno's event without the thinking's text, encrypted data and signatures, nor its citations (the
    ``Citations`` event carries the web ones, without their encrypted index); a team's
    ``member_responses`` reduced to each member run's answer (``MEMBER_RESPONSE_KEYS``)."""
    out = {k: v for k, v in data.items() if k not in _THINKING_KEYS and k != "citations"}
    if isinstance(out.get("member_responses"), list):
        out["member_responses"] = [{k: m[k] for k in MEMBER_RESPONSE_KEYS if m.get(k) is not None}
                                   if isinstance(m, dict) else m for m in out["member_responses"]]
    provider = out.get("model_provider_data")
    if isinstance(provider, dict) and any(k in provider for k in _PROVIDER_KEYS):
        provider = {k: v for k, v in provider.items() if k not in _PROVIDER_KEYS}
        if provider:
            out["model_provider_data"] = provider
        else:
            out.pop("model_provider_data")
    return out
