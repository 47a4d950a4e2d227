"""Time to first token (issue 28 item 6): the model's first words reach the phone as soon as the model
sends them, not with a later batch. The stand-in sends its first text delta and then stalls until the
test releases it: the client must read that text while the stand-in is still stalled (an ordering
assertion, no timing). A server that held the first event back (batching, buffering, a missing flush,
compression) would only deliver it after the stall ends, and the stand-in would no longer be stalled.
The figure itself is ``bin/bench --only ttfb``."""

from __future__ import annotations

import httpx
import pytest

from tests.support.images import LARGE_PNG, b64
from tests.support.streams import read_events

ANSWER = "First words now, the rest of the answer only after a long pause"


def _has_text(events: list[dict]) -> bool:
    return any(e["event"] == "RunContent" and e["data"].get("content") for e in events)


@pytest.mark.parametrize("photo", [False, True], ids=["text", "image"])
def test_the_first_text_reaches_the_client_while_the_model_still_stalls(user, standin, server_url, photo):
    standin.script([{"text": ANSWER, "stall_after_first_delta": True, "stall_seconds": 60}])
    sid = user.new_session()
    body: dict = {"message": "Tell me something"}
    if photo:
        body["images"] = [{"data": b64(LARGE_PNG), "mime_type": "image/png"}]
    try:
        with httpx.Client(base_url=server_url, headers=user.headers, timeout=120) as client:
            with client.stream("POST", f"/sessions/{sid}/turns", json=body) as r:
                assert r.status_code == 200
                lines = r.iter_lines()
                before = read_events(lines, stop_after=_has_text)
                stalled_when_seen = standin.stalled()
                standin.release()
                after = read_events(lines)
    finally:
        standin.release()  # never leave the stand-in stalled for the next test
    assert stalled_when_seen, "the first text reached the client only after the model's stall ended"
    first = [e["data"]["content"] for e in before if e["event"] == "RunContent" and e["data"].get("content")]
    assert first == ["First words now, "]
    events = before + after
    assert events[-1]["event"] == "TurnCompleted"
    text = "".join(e["data"]["content"] for e in events
                   if e["event"] == "RunContent" and isinstance(e["data"].get("content"), str))
    assert text == ANSWER
