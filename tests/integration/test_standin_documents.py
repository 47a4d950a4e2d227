"""The stand-in reads PDF document blocks as the real Messages API does: it bills each page
(``DOCUMENT_PAGE_TOKENS``, 1,500 input tokens: the stand-in's rule, the low end of the real ~1,500-3,000), and
refuses with the real API's 400 a request holding more than 100 PDF pages in all, a PDF it cannot
read, an encrypted one, or a document of another media type; a body over 32 MB is a 413 before it
is read. Driven by the real ``anthropic`` SDK (``max_retries=0``); PDFs made with pypdf."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from local.anthropic_standin import DOCUMENT_PAGE_TOKENS, MAX_REQUEST_BYTES
from tests.support.documents import b64, corrupt_pdf, pdf

MODEL = "claude-sonnet-4-5"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def document(data: bytes, media_type: str = "application/pdf") -> dict:
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": b64(data)}}


def user(*blocks, text: str = "What does this say?") -> dict:
    return {"role": "user", "content": [*blocks, {"type": "text", "text": text}]}


def ask(client, messages):
    return client.messages.create(model=MODEL, max_tokens=64, messages=messages)


def refused(client, messages) -> str:
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client, messages)
    assert info.value.status_code == 400
    error = info.value.body["error"]
    assert error["type"] == "invalid_request_error", error
    return error["message"]


def test_each_page_is_billed_and_the_reply_says_what_it_read(standin_sdk):
    without = ask(standin_sdk, [user()]).usage.input_tokens
    for pages in (1, 7, 60):
        reply = ask(standin_sdk, [user(document(pdf(pages)))])
        assert reply.usage.input_tokens - without == pages * DOCUMENT_PAGE_TOKENS
        assert f"I can read 1 PDF document(s) ({pages} pages)." in reply.content[0].text
    counted = standin_sdk.messages.count_tokens(model=MODEL, messages=[user(document(pdf(7)))]).input_tokens
    assert counted == ask(standin_sdk, [user(document(pdf(7)))]).usage.input_tokens


def test_at_most_100_pdf_pages_in_a_request_every_document_counted(standin_sdk):
    assert ask(standin_sdk, [user(document(pdf(100)))]).stop_reason == "end_turn"
    assert ask(standin_sdk, [user(document(pdf(60)), document(pdf(40, marker="b")))]).stop_reason == "end_turn"
    assert refused(standin_sdk, [user(document(pdf(101)))]) == "A maximum of 100 PDF pages may be provided."
    # across messages: an earlier turn's document counts too
    history = [user(document(pdf(60))), {"role": "assistant", "content": "Read it."}]
    assert refused(standin_sdk, [*history, user(document(pdf(41, marker="c")))]) == (
        "A maximum of 100 PDF pages may be provided.")


@pytest.mark.parametrize("data, media_type, message", [
    (corrupt_pdf(), "application/pdf", "messages.0.content.0.document.source.base64.data: The PDF specified was not valid."),
    (b"just some text, not a PDF", "application/pdf",
     "messages.0.content.0.document.source.base64.data: The PDF specified was not valid."),
    (pdf(2, password="secret"), "application/pdf",
     "messages.0.content.0.document.source.base64.data: The PDF specified is password protected."),
    (pdf(1), "application/msword",
     "messages.0.content.0.document.source.base64.media_type: Input should be 'application/pdf'"),
], ids=["corrupt", "not-a-pdf", "encrypted", "media-type"])
def test_a_pdf_the_api_cannot_read_is_refused(standin_sdk, data, media_type, message):
    assert refused(standin_sdk, [user(document(data, media_type))]) == message


def test_a_body_over_32_mb_with_a_document_is_413(own_standin):
    big = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                          "data": "A" * (MAX_REQUEST_BYTES + 16)}}
    body = json.dumps({"model": MODEL, "max_tokens": 16, "messages": [user(big)]}).encode()
    r = httpx.post(own_standin.url + "/v1/messages", content=body, timeout=120, headers={
        "content-type": "application/json", "x-api-key": "test", "anthropic-version": "2023-06-01"})
    assert r.status_code == 413
    assert r.json()["error"] == {"type": "request_too_large",
                                 "message": "Request exceeds the maximum allowed number of bytes."}
