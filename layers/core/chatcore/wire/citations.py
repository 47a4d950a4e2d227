"""The sources an answer cites (Anthropic's web search): the one reading of its citations.

An assistant message's row keeps the model's content blocks exactly as the API sent them
(``provider_data.content_blocks`` of its ``message_parts``: the ``server_tool_use`` and
``web_search_tool_result`` blocks with their encrypted content, and text blocks whose ``citations``
carry an ``encrypted_index``; agno replays them as they are, and the API refuses them changed). From
them, and from agno's streamed citations: what the app shows, each source's url, title and cited
text, never the encrypted parts.
"""

from __future__ import annotations

from typing import Any

from chatcore.wire.schemas import CitationOut

WEB_CITATION = "web_search_result_location"


def _out(citation: Any) -> CitationOut | None:
    if not isinstance(citation, dict) or citation.get("type") != WEB_CITATION or not citation.get("url"):
        return None
    return CitationOut(url=citation["url"], title=citation.get("title"), cited_text=citation.get("cited_text"))


def cited(raw: Any) -> list[CitationOut]:
    """The web sources among citations as the API gives them (a text block's, agno's ``citations.raw``)."""
    return [c for c in map(_out, raw if isinstance(raw, list) else []) if c is not None]


def citations_out(parts: dict[str, Any]) -> list[CitationOut]:
    """The sources a stored message's answer cites, in order (its text blocks' web citations)."""
    blocks = ((parts.get("provider_data") or {}).get("content_blocks")) or []
    return [c for b in blocks if isinstance(b, dict) and b.get("type") == "text" for c in cited(b.get("citations"))]


def streamed_citations(data: dict[str, Any]) -> list[CitationOut]:
    """The web sources of one of agno's content events (its ``citations``)."""
    found = data.get("citations")
    return cited(found.get("raw")) if isinstance(found, dict) else []
