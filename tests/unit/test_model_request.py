"""The model's copy of the messages (``chatcore.turns.claude.without_blank_text``): a user message
whose text is empty or blank and which carries photos is sent as its image blocks alone, because
agno would open it with an empty text block the Messages API refuses. Everything else is untouched,
and the stored message is never changed."""

from __future__ import annotations

import base64

from agno.media import Image
from agno.models.message import Message
from agno.utils.models.claude import format_messages

from chatcore.turns.claude import without_blank_text
from tests.support.images import SMALL_PNG


def _photo(content: str | None) -> Message:
    return Message(role="user", content=content, images=[Image(content=SMALL_PNG, mime_type="image/png")])


def _wire(messages: list[Message]) -> list[dict]:
    return format_messages(without_blank_text(messages))[0]


def test_agno_alone_sends_an_empty_text_block_for_a_photo_without_a_caption():
    # what without_blank_text is for: agno alone sends the empty text block the Messages API refuses
    # (when this fails, agno has stopped and the guard can go)
    assert format_messages([_photo("")])[0][0]["content"][0] == {"type": "text", "text": ""}


def test_a_blank_photo_message_becomes_its_image_blocks_alone():
    for content in ("", None, "  \n\t"):
        original = _photo(content)
        [wire] = _wire([original])
        assert [b["type"] for b in wire["content"]] == ["image"]
        assert base64.b64decode(wire["content"][0]["source"]["data"]) == SMALL_PNG
        # the caller's message (stored, or the run's own list) is not changed
        assert original.content == content and len(original.images) == 1


def test_two_photos_keep_their_order():
    message = Message(role="user", content=" ", images=[Image(content=SMALL_PNG, mime_type="image/png", id="a"),
                                                      Image(content=b"GIF89a" + bytes(20), mime_type="image/gif", id="b")])
    [wire] = _wire([message])
    assert [b["source"]["media_type"] for b in wire["content"]] == ["image/png", "image/gif"]


def test_messages_with_text_or_without_photos_are_untouched():
    captioned = _photo("What is this?")
    assistant = Message(role="assistant", content="")
    text_only = Message(role="user", content="hello")
    out = without_blank_text([captioned, text_only, assistant])
    assert out[0] is captioned and out[1] is text_only and out[2] is assistant
    assert _wire([captioned])[0]["content"][0] == {"type": "text", "text": "What is this?"}
