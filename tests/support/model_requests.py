"""What the stack's stand-in model received during a test, as the tests of Claude's vocabulary (thinking,
web search, teams) read it."""

from __future__ import annotations


def accepted(standin) -> list[dict]:
    """Every model request of the test, each asserted accepted (none answered with an error)."""
    requests = standin.requests()
    for r in requests:
        assert "status" not in (r["response"] or {}), r["response"]
    return requests


def thinking_blocks(body: dict) -> list[dict]:
    """The thinking and redacted thinking blocks of a request's assistant messages, in order."""
    return [b for m in body["messages"] if m["role"] == "assistant" and isinstance(m["content"], list)
            for b in m["content"] if b["type"] in ("thinking", "redacted_thinking")]
