"""A photo sent without a caption is a normal turn.

The Messages API refuses a text block that is empty or only whitespace ("text content blocks must be
non-empty"), and so does the stand-in. A photo alone, an upload alone, or a photo with a message of
spaces each end ``TurnCompleted``; the model is sent the image blocks alone, in that turn and in
every later turn that replays it (agent, team leader and the member the photo is forwarded to).
"""

from __future__ import annotations

import pytest

from tests.support.images import LARGE_PNG, SMALL_PNG, b64
from tests.support.uploads import uploaded


def _text_blocks(body: dict) -> list[str]:
    """Every text the request carries in a user message (string contents and text blocks)."""
    texts = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        texts += [b["text"] for b in content if b.get("type") == "text"]
    return texts


def _assert_no_blank_text(standin) -> list[dict]:
    requests = standin.requests()
    assert requests
    for request in requests:
        assert "error" not in (request.get("response") or {}), request.get("response")
        assert all(t.strip() for t in _text_blocks(request["body"])), _text_blocks(request["body"])
    return requests


def _user_blocks(body: dict, index: int = 0) -> list[dict]:
    users = [m for m in body["messages"] if m["role"] == "user"]
    content = users[index]["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


@pytest.mark.parametrize("body", [
    {"images": [{"data": b64(SMALL_PNG)}]},
    {"message": "", "images": [{"data": b64(LARGE_PNG)}]},
    {"message": "   \n\t ", "images": [{"data": b64(SMALL_PNG)}]},
], ids=["no-message", "empty-message", "whitespace-message"])
def test_a_photo_alone_is_a_normal_turn(user, standin, db_conn, body):
    sid = user.new_session()
    r, events = user.turn(sid, **body)
    assert r.status_code == 200, r.text
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    requests = _assert_no_blank_text(standin)
    # the first request's user message is the image and nothing else
    assert [b["type"] for b in _user_blocks(requests[0]["body"])] == ["image"]
    # stored like any turn: the user row holds the photo and no text to show
    row = db_conn.execute(
        "select message_parts from chat_events where session_id = %s and role = 'user'", (sid,)).fetchone()
    assert len(row["message_parts"]["images"]) == 1
    assert not (row["message_parts"].get("content") or "").strip()
    messages = user.client.get(f"/sessions/{sid}/messages").json()["items"]
    assert messages[0]["role"] == "user" and len(messages[0]["images"]) == 1 and not messages[0]["text"]
    # the next turn replays the captionless photo: still no blank text block anywhere
    standin.reset()
    r, events = user.turn(sid, message="What was in it?")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    second = _assert_no_blank_text(standin)[0]["body"]
    assert [b["type"] for b in _user_blocks(second, 0)] == ["image"]
    assert _user_blocks(second, 1) in ([{"type": "text", "text": "What was in it?"}],
                                       [{"type": "text", "text": "What was in it?", "cache_control": {"type": "ephemeral"}}])


def test_an_upload_alone_is_a_normal_turn(user, standin):
    upload = uploaded(user, LARGE_PNG)
    sid = user.new_session()
    r, events = user.turn(sid, images=[{"upload_id": upload["upload_id"]}])
    assert r.status_code == 200, r.text
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    requests = _assert_no_blank_text(standin)
    assert [b["type"] for b in _user_blocks(requests[0]["body"])] == ["image"]


def test_two_photos_without_a_caption_are_two_image_blocks(user, standin):
    sid = user.new_session()
    r, events = user.turn(sid, message=" ", images=[{"data": b64(SMALL_PNG)}, {"data": b64(LARGE_PNG)}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    assert [b["type"] for b in _user_blocks(_assert_no_blank_text(standin)[0]["body"])] == ["image", "image"]


def test_a_team_takes_a_photo_alone(user, standin):
    r = user.client.post("/sessions", json={"team": "planner"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r, events = user.turn(sid, images=[{"data": b64(SMALL_PNG)}])
    assert r.status_code == 200, r.text
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    requests = _assert_no_blank_text(standin)
    # the leader's first request carries the photo without a text block
    assert "image" in [b["type"] for b in _user_blocks(requests[0]["body"])]
    standin.reset()
    r, events = user.turn(sid, message="and now?")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    _assert_no_blank_text(standin)


def test_a_message_of_spaces_without_a_photo_is_refused(user, standin):
    sid = user.new_session()
    r, _ = user.turn(sid, message="   ")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "message"
    assert standin.requests() == []
