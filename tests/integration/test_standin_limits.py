"""The stand-in refuses what the real Messages API refuses and bills prompt caching as Anthropic does.

Driven by the real ``anthropic`` SDK (``max_retries=0``) against a stand-in of this module's own
(``own_standin``); the 32 MB body goes through raw httpx. Images are real PNGs made here with zlib
(one colour, 1 bit per pixel: an 8000 x 8000 one is a few KB), plus minimal JPEG / GIF / WebP headers
for the size parsers.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from functools import lru_cache
from pathlib import Path

import anthropic
import httpx
import pytest

from local.anthropic_standin import (
    MAX_REQUEST_BYTES,
    CacheEntry,
    analyse_prompt,
    apply_cache_plan,
    compute_usage,
    image_dimensions,
    image_tokens,
    plan_cache,
)
from local.sample_images import b64

MODEL = "claude-sonnet-4-5"
HAIKU = "claude-haiku-4-5"
OVERHEAD = 4  # the stand-in's documented fixed request overhead

# The SDK warns that these real model ids are deprecated; irrelevant against the stand-in.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


# --------------------------------------------------------------------------- helpers


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@lru_cache(maxsize=None)
def png(width: int, height: int, total_bytes: int | None = None) -> bytes:
    """A valid black PNG (1-bit greyscale); ``total_bytes`` pads it to exactly that size with a private
    ancillary chunk (which decoders skip)."""
    row = b"\x00" * (1 + (width + 7) // 8)
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(row * height, 6))
    iend = _chunk(b"IEND", b"")
    pad = b""
    if total_bytes is not None:
        filler = total_bytes - (8 + len(ihdr) + 12 + len(idat) + len(iend))
        assert filler >= 0
        pad = _chunk(b"prVt", b"\x00" * filler)
    data = b"\x89PNG\r\n\x1a\n" + ihdr + pad + idat + iend
    assert total_bytes is None or len(data) == total_bytes
    return data


def jpeg(width: int, height: int) -> bytes:
    """SOI, a JFIF APP0 segment, a baseline SOF0 frame header, EOI: enough for a size reader."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def webp(width: int, height: int, kind: str = "VP8X") -> bytes:
    if kind == "VP8X":
        payload = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    elif kind == "VP8L":
        payload = b"\x2f" + ((width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    else:  # "VP8 " (lossy)
        payload = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    chunk = kind.encode().ljust(4) + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def image(data: bytes, media_type: str = "image/png") -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": b64(data)}}


def raw_image(data_b64: str, media_type: str = "image/png") -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data_b64}}


def user(*blocks, text: str = "What is in these pictures?") -> dict:
    return {"role": "user", "content": [*blocks, {"type": "text", "text": text}]}


def ask(client, messages, model: str = MODEL, **kw):
    return client.messages.create(model=model, max_tokens=64, messages=messages, **kw)


def refused(client, messages, **kw) -> str:
    """The message of the 400 the stand-in answers."""
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client, messages, **kw)
    assert info.value.status_code == 400
    error = info.value.body["error"]
    assert error["type"] == "invalid_request_error", error
    return error["message"]


def counted(client, messages, model: str = MODEL, **kw) -> int:
    return client.messages.count_tokens(model=model, messages=messages, **kw).input_tokens


def total(usage) -> int:
    return usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens


def tok(text: str) -> int:
    return math.ceil(len(text) / 4)


# --------------------------------------------------------------------------- request size (413)


def test_body_over_32_mb_is_413_and_just_under_is_served(own_standin):
    url = own_standin.url + "/v1/messages"
    headers = {"content-type": "application/json", "x-api-key": "test", "anthropic-version": "2023-06-01"}
    with httpx.Client(timeout=120) as http:
        # 6 images of 5 MB of base64 each: a ~31.5 MB body, under the limit, is served
        five_mb = image(png(1, 1, total_bytes=3_932_160))
        body = json.dumps({"model": MODEL, "max_tokens": 16,
                           "messages": [user(*[five_mb] * 6)]}).encode()
        assert len(body) < MAX_REQUEST_BYTES
        r = http.post(url, content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert "I can see 6 image(s)" in r.json()["content"][0]["text"]

        # exactly 32 MB is not "too large" (it is refused for its 8M-token prompt instead)
        def text_body(size: int) -> bytes:
            shell = json.dumps({"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "#"}]})
            head, tail = shell.split("#")
            filler = size - len(head.encode()) - len(tail.encode())
            return (head + "x" * filler + tail).encode()

        exact = text_body(MAX_REQUEST_BYTES)
        assert len(exact) == 32 * 1024 * 1024
        r = http.post(url, content=exact, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("prompt is too long: ")

        over = text_body(MAX_REQUEST_BYTES + 1)
        r = http.post(url, content=over, headers=headers)
        assert r.status_code == 413
        assert r.json() == {"type": "error", "error": {
            "type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}}
        assert r.headers["request-id"].startswith("req_")

    last = own_standin.requests()[-1]
    assert last["body"] is None and last["size"] == MAX_REQUEST_BYTES + 1
    assert last["response"] == {"status": 413, "error": {
        "type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}}


# --------------------------------------------------------------------------- images


def test_at_most_100_images_counting_those_in_tool_results(own_standin, standin_sdk):
    tiny = image(png(1, 1))
    ok = ask(standin_sdk, [user(*[tiny] * 100)])
    assert "I can see 100 image(s)" in ok.content[0].text

    assert refused(standin_sdk, [user(*[tiny] * 101)]) == "messages: Too many images in request (max 100)"

    # 99 in the question + 2 inside a tool_result = 101
    tool_turn = [
        user(*[tiny] * 99, text="look"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "camera", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [tiny, tiny]}]},
    ]
    assert refused(standin_sdk, tool_turn) == "messages: Too many images in request (max 100)"
    tool_turn[0] = user(*[tiny] * 98, text="look")
    assert ask(standin_sdk, tool_turn).content[0].text.startswith("The tool returned")  # 100: served

    # a url image cannot be measured offline but it counts
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert refused(standin_sdk, [user(*[tiny] * 100, url_image)]) == "messages: Too many images in request (max 100)"

    # the maximum is configurable, for every model or per model (600 for some models)
    own_standin.configure(max_images={"claude-opus-4-1": 600})
    assert "I can see 101 image(s)" in ask(standin_sdk, [user(*[tiny] * 101)], model="claude-opus-4-1").content[0].text
    assert refused(standin_sdk, [user(*[tiny] * 101)]) == "messages: Too many images in request (max 100)"
    own_standin.configure(max_images=600)
    assert "I can see 101 image(s)" in ask(standin_sdk, [user(*[tiny] * 101)]).content[0].text
    own_standin.reset()
    assert refused(standin_sdk, [user(*[tiny] * 101)]) == "messages: Too many images in request (max 100)"


def test_image_sides_at_most_8000_px(standin_sdk):
    big = ask(standin_sdk, [user(image(png(8000, 8000)))])
    assert "I can see 1 image(s)" in big.content[0].text

    message = ("messages.0.content.{j}.image.source.base64.data: "
               "At least one of the image dimensions exceed max allowed size: 8000 pixels")
    assert refused(standin_sdk, [user(image(png(8001, 1)))]) == message.format(j=0)
    assert refused(standin_sdk, [user(image(png(1, 1)), image(png(1, 8001)))]) == message.format(j=1)
    # every format's size is read: JPEG SOF, GIF screen, WebP VP8X / VP8L / VP8
    for data, media_type in [(jpeg(8001, 10), "image/jpeg"), (gif(10, 8001), "image/gif"),
                             (webp(8001, 1), "image/webp"), (webp(1, 8001, "VP8L"), "image/webp"),
                             (webp(8001, 1, "VP8 "), "image/webp")]:
        assert refused(standin_sdk, [user(image(data, media_type))]) == message.format(j=0), media_type
    for data, media_type in [(jpeg(8000, 10), "image/jpeg"), (gif(10, 8000), "image/gif"),
                             (webp(8000, 1), "image/webp")]:
        assert "I can see 1 image(s)" in ask(standin_sdk, [user(image(data, media_type))]).content[0].text


def test_image_nested_in_a_tool_result_is_checked_with_its_path(standin_sdk):
    messages = [
        {"role": "user", "content": "take a photo"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_cam", "name": "camera", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_cam",
                                      "content": [{"type": "text", "text": "here"}, image(png(8001, 2))]}]},
    ]
    assert refused(standin_sdk, messages) == (
        "messages.2.content.0.tool_result.content.1.image.source.base64.data: "
        "At least one of the image dimensions exceed max allowed size: 8000 pixels")


def test_more_than_20_images_at_most_2000_px(standin_sdk):
    tiny = image(png(1, 1))
    # 21 images: 2000 px is fine, 2001 px is not
    ok = ask(standin_sdk, [user(*[tiny] * 20, image(png(2000, 2000)))])
    assert "I can see 21 image(s)" in ok.content[0].text
    assert refused(standin_sdk, [user(*[tiny] * 20, image(png(2001, 1)))]) == (
        "messages.0.content.20.image.source.base64.data: "
        "At least one of the image dimensions exceed max allowed size for many-image requests: 2000 pixels")
    assert refused(standin_sdk, [user(image(png(1, 2001)), *[tiny] * 20)]).startswith("messages.0.content.0.image.")
    # 20 images: 2001 px is fine
    ok = ask(standin_sdk, [user(*[tiny] * 19, image(png(2001, 2001)))])
    assert "I can see 20 image(s)" in ok.content[0].text


def test_image_base64_at_most_5_mb_of_characters(standin_sdk):
    exactly = b64(png(1, 1, total_bytes=3_932_160))
    assert len(exactly) == 5_242_880
    assert "I can see 1 image(s)" in ask(standin_sdk, [user(raw_image(exactly))]).content[0].text

    # measured on the base64 text, before decoding (this one is not even valid base64)
    assert refused(standin_sdk, [user(raw_image(exactly + "A"))]) == (
        "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5242881 bytes > 5242880 bytes")
    # the next valid base64 length; 3,932,163 decoded bytes
    next_valid = b64(png(1, 1, total_bytes=3_932_163))
    assert len(next_valid) == 5_242_884
    assert refused(standin_sdk, [user(raw_image(next_valid))]) == (
        "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5242884 bytes > 5242880 bytes")


def test_image_media_type_must_be_supported_and_match_the_data(standin_sdk):
    assert refused(standin_sdk, [user(image(png(2, 2), "image/bmp"))]) == (
        "messages.0.content.0.image.source.base64.media_type: "
        "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
    assert refused(standin_sdk, [user(image(png(2, 2), "image/jpeg"))]) == (
        "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/jpeg")
    assert refused(standin_sdk, [user(image(jpeg(2, 2), "image/png"))]) == (
        "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/png")
    assert refused(standin_sdk, [user(image(b"definitely not a picture", "image/gif"))]) == (
        "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/gif")
    assert refused(standin_sdk, [user(raw_image("not base64!", "image/png"))]) == (
        "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/png")
    # the right signature but nothing after it: the API cannot read it
    assert refused(standin_sdk, [user(raw_image("iVBORw0KGgo=", "image/png"))]) == "Could not process image"
    for data, media_type in [(png(3, 2), "image/png"), (jpeg(3, 2), "image/jpeg"), (gif(3, 2), "image/gif"),
                             (webp(3, 2), "image/webp")]:
        assert "I can see 1 image(s)" in ask(standin_sdk, [user(image(data, media_type))]).content[0].text


def test_image_size_readers():
    assert image_dimensions(png(8001, 3)) == (8001, 3)
    assert image_dimensions(jpeg(640, 480)) == (640, 480)
    assert image_dimensions(gif(17, 9)) == (17, 9)
    assert image_dimensions(webp(300, 200)) == (300, 200)
    assert image_dimensions(webp(300, 200, "VP8L")) == (300, 200)
    assert image_dimensions(webp(300, 200, "VP8 ")) == (300, 200)
    assert image_dimensions(b"\x89PNG\r\n\x1a\n") is None
    assert image_dimensions(b"\xff\xd8\xff\xd9") is None


# --------------------------------------------------------------------------- context window


def test_prompt_over_the_context_window_is_refused(own_standin, standin_sdk):
    def prompt(tokens: int) -> list[dict]:
        return [{"role": "user", "content": "x" * 4 * (tokens - OVERHEAD)}]

    assert counted(standin_sdk, prompt(200_000)) == 200_000
    ok = ask(standin_sdk, prompt(200_000))
    assert total(ok.usage) == 200_000
    assert refused(standin_sdk, prompt(200_001)) == "prompt is too long: 200001 tokens > 200000 maximum"
    # count_tokens still counts a prompt too long to send
    assert counted(standin_sdk, prompt(200_001)) == 200_001

    r = httpx.post(own_standin.url + "/_standin/config", json={"context_window": 60_000})
    assert r.status_code == 200 and r.json()["config"]["context_window"] == 60_000
    assert refused(standin_sdk, prompt(60_001)) == "prompt is too long: 60001 tokens > 60000 maximum"
    assert total(ask(standin_sdk, prompt(60_000)).usage) == 60_000

    own_standin.configure(context_window={HAIKU: 1000})
    assert refused(standin_sdk, prompt(1001), model=HAIKU) == "prompt is too long: 1001 tokens > 1000 maximum"
    assert ask(standin_sdk, prompt(1001)).usage.input_tokens == 1001

    httpx.post(own_standin.url + "/_standin/reset")
    assert httpx.get(own_standin.url + "/_standin/config").json()["config"]["context_window"] is None
    assert total(ask(standin_sdk, prompt(60_001)).usage) == 60_001


def test_config_endpoint_refuses_unknown_keys_and_bad_values(own_standin):
    for bad in ({"context_windw": 5}, {"context_window": 0}, {"max_images": "many"}, {"max_images": {"m": -1}},
                {"clock_offset_seconds": -1}, {"latency_ms": -5}, {"latency_ms": {"m": "slow"}}, ["context_window"]):
        r = httpx.post(own_standin.url + "/_standin/config", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(own_standin.url + "/_standin/config").json()["config"] == {
        "context_window": None, "max_images": None, "clock_offset_seconds": 0, "latency_ms": None}
    with pytest.raises(ValueError, match="unknown config key"):
        own_standin.configure(window=5)
    assert httpx.post(own_standin.url + "/_standin/clock", json={"advance_seconds": -5}).status_code == 400
    assert httpx.post(own_standin.url + "/_standin/clock", json={"seconds": 5}).status_code == 400


def test_latency_ms_delays_the_answers_of_the_models_it_names(own_standin, standin_sdk):
    """``latency_ms`` (per model): an accepted request waits that long before its answer starts."""
    own_standin.configure(latency_ms={HAIKU: 400})
    started = time.monotonic()
    assert ask(standin_sdk, [{"role": "user", "content": "hello"}], model=HAIKU).usage.input_tokens > 0
    assert time.monotonic() - started >= 0.4
    assert own_standin.config()["latency_ms"] == {HAIKU: 400}
    httpx.post(own_standin.url + "/_standin/reset")
    assert own_standin.config()["latency_ms"] is None


def test_command_line_context_window():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.anthropic_standin", "--port", str(port), "--context-window", "5000"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url + "/_standin/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        client = anthropic.Anthropic(api_key="test", base_url=url, max_retries=0)
        long = [{"role": "user", "content": "y" * 4 * (5001 - OVERHEAD)}]
        assert refused(client, long) == "prompt is too long: 5001 tokens > 5000 maximum"
        httpx.post(url + "/_standin/reset")  # the command line's value is the default reset restores
        assert httpx.get(url + "/_standin/config").json()["config"]["context_window"] == 5000
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- messages


def test_tool_use_must_be_answered_in_the_next_message(standin_sdk):
    use = {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_A", "name": "lookup", "input": {"q": "a"}},
        {"type": "tool_use", "id": "toolu_B", "name": "lookup", "input": {"q": "b"}},
    ]}
    question = {"role": "user", "content": "look up a and b"}
    assert refused(standin_sdk, [question, use, {"role": "user", "content": "never mind"}]) == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_A, toolu_B. "
        "Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
    only_a = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "a!"}]}
    assert refused(standin_sdk, [question, use, only_a]) == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_B. "
        "Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
    # both answered: fine; an unanswered tool_use in the final (prefilled) assistant message: fine
    both = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_A", "content": "a!"},
        {"type": "tool_result", "tool_use_id": "toolu_B", "content": [{"type": "text", "text": "b!"}]},
    ]}
    assert ask(standin_sdk, [question, use, both]).content[0].text.startswith("The tool returned: a!")
    assert ask(standin_sdk, [question, use]).stop_reason == "end_turn"


def test_tool_result_must_answer_the_previous_message(standin_sdk):
    use = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_A", "name": "lookup", "input": {}}]}
    answer = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_A", "content": "a!"},
        {"type": "tool_result", "tool_use_id": "toolu_Z", "content": "z?"},
    ]}
    assert refused(standin_sdk, [{"role": "user", "content": "go"}, use, answer]) == (
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_Z. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
    # a tool_result with no assistant message before it
    assert refused(standin_sdk, [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_A", "content": "a!"}]}]) == (
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_A. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
    # answering a tool_use two messages back is not enough
    late = [{"role": "user", "content": "go"}, use,
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "a!"}]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_A", "content": "again"}]}]
    assert refused(standin_sdk, late).startswith("messages.4.content.0: unexpected `tool_use_id` found")


def test_text_blocks_and_messages_must_not_be_empty(own_standin, standin_sdk):
    def with_text(text: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": text}]}]

    assert refused(standin_sdk, with_text("")) == "messages: text content blocks must be non-empty"
    assert refused(standin_sdk, with_text(" \n\t")) == "messages: text content blocks must contain non-whitespace text"
    assert refused(standin_sdk, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "text", "text": ""}, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
    ]) == "messages: text content blocks must be non-empty"
    # inside a tool_result too
    assert refused(standin_sdk, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": ""}]}]},
    ]) == "messages: text content blocks must be non-empty"

    for empty in ("", []):
        assert refused(standin_sdk, [{"role": "user", "content": empty}, {"role": "assistant", "content": "x"},
                                {"role": "user", "content": "y"}]) == (
            "messages.0: all messages must have non-empty content except for the optional final assistant message")
        assert refused(standin_sdk, [{"role": "user", "content": "a"}, {"role": "assistant", "content": empty},
                                {"role": "user", "content": "y"}]).startswith("messages.1: all messages must have")
        # the final assistant message may be empty
        assert ask(standin_sdk, [{"role": "user", "content": "a"}, {"role": "assistant", "content": empty}])

    # a refused request is recorded with its error and consumes no script step
    own_standin.script([{"text": "scripted"}])
    refused(standin_sdk, with_text(""))
    assert ask(standin_sdk, with_text("fine")).content[0].text == "scripted"
    first, second = own_standin.requests()[-2:]
    assert first["response"] == {"status": 400, "error": {
        "type": "invalid_request_error", "message": "messages: text content blocks must be non-empty"}}
    assert first["body"]["messages"][0]["content"][1] == {"type": "text", "text": ""}
    assert second["response"]["content"] == [{"type": "text", "text": "scripted"}]


# --------------------------------------------------------------------------- cache_control


CC = {"type": "ephemeral"}


def _blocks(n: int, cached: int) -> list[dict]:
    return [{"type": "text", "text": f"part {i}", **({"cache_control": CC} if i < cached else {})}
            for i in range(n)]


def test_at_most_4_cache_breakpoints(standin_sdk):
    tools = [{"name": "t", "description": "d", "input_schema": {"type": "object"}, "cache_control": CC}]
    system = [{"type": "text", "text": "sys", "cache_control": CC}]
    assert ask(standin_sdk, [{"role": "user", "content": _blocks(3, 2)}], tools=tools, system=system)
    assert refused(standin_sdk, [{"role": "user", "content": _blocks(4, 3)}], tools=tools, system=system) == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5.")
    assert ask(standin_sdk, [{"role": "user", "content": _blocks(4, 4)}])
    # the top-level (automatic caching) breakpoint counts too
    assert refused(standin_sdk, [{"role": "user", "content": _blocks(4, 4)}], cache_control=CC) == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5.")
    assert ask(standin_sdk, [{"role": "user", "content": _blocks(4, 3)}], cache_control=CC)


def test_a_thinking_block_cannot_carry_a_cache_breakpoint(standin_sdk):
    """As the API: thinking blocks are cached as part of the prefix, never marked themselves (the
    history-end breakpoint of turns.claude skips a message that ends in one)."""
    from local.anthropic_standin import thinking_signature

    thought = {"type": "thinking", "thinking": "hm", "signature": thinking_signature("hm"), "cache_control": CC}
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [thought]},
                {"role": "user", "content": "and?"}]
    assert refused(standin_sdk, messages) == "messages.1.content.0.thinking.cache_control: Extra inputs are not permitted"


def test_cache_ttl_must_be_valid_and_1h_before_5m(standin_sdk):
    def system(first: str, second: str) -> list[dict]:
        return [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": first}},
                {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": second}}]

    hi = [{"role": "user", "content": "hi"}]
    assert ask(standin_sdk, hi, system=system("1h", "5m"))
    assert refused(standin_sdk, hi, system=system("5m", "1h")) == (
        "system.1.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' "
        "cache_control block. Note that blocks are processed in the following order: `tools`, `system`, `messages`.")
    assert refused(standin_sdk, hi, system=system("1h", "10m")) == (
        "system.1.cache_control.ttl: Input should be '5m' or '1h'")
    assert refused(standin_sdk, hi, system=system("5m", "5m"),
                   cache_control={"type": "ephemeral", "ttl": "1h"}).startswith(
        "cache_control.ttl: a ttl='1h' cache_control block must not come after")


# --------------------------------------------------------------------------- prompt caching


SYSTEM_1100 = "s" * 4400  # 1,100 tokens


def _cached_system(text: str = SYSTEM_1100, ttl: str | None = None) -> list[dict]:
    cc = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": text, "cache_control": cc}]


def test_prefix_under_the_minimum_is_not_cached(standin_sdk):
    hi = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        u = ask(standin_sdk, hi, system=_cached_system("s" * 4092)).usage  # 1,023 tokens
        assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (0, 0)
        assert u.input_tokens == OVERHEAD + 1023 + 1
    u = ask(standin_sdk, hi, system=_cached_system("s" * 4096)).usage  # 1,024 tokens: cached
    assert (u.cache_creation_input_tokens, u.cache_read_input_tokens, u.input_tokens) == (1024, 0, OVERHEAD + 1)

    # haiku-class models need 2,048
    u = ask(standin_sdk, hi, model=HAIKU, system=_cached_system("h" * 8188)).usage  # 2,047
    assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (0, 0)
    first = ask(standin_sdk, hi, model=HAIKU, system=_cached_system("h" * 8192)).usage  # 2,048
    again = ask(standin_sdk, hi, model=HAIKU, system=_cached_system("h" * 8192)).usage
    assert (first.cache_creation_input_tokens, again.cache_read_input_tokens) == (2048, 2048)


def test_first_request_writes_and_the_next_reads_and_writes_only_the_tail(standin_sdk):
    first_turn = [{"role": "user", "content": "first question"}]  # 4 tokens
    with standin_sdk.messages.stream(model=MODEL, max_tokens=64, system=_cached_system(), messages=first_turn,
                                cache_control=CC) as stream:
        first = stream.get_final_message().usage
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens == 1100 + 4
    assert first.cache_creation.ephemeral_5m_input_tokens == 1104
    assert first.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.input_tokens == OVERHEAD

    second_turn = [*first_turn, {"role": "assistant", "content": "an answer"},  # 3 tokens
                   {"role": "user", "content": "second question"}]  # 4 tokens
    second = ask(standin_sdk, second_turn, system=_cached_system(), cache_control=CC).usage
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 3 + 4
    assert second.input_tokens == OVERHEAD
    assert total(second) == counted(standin_sdk, second_turn, system=_cached_system(), cache_control=CC) == 1115

    # the same prefix read without a marker on the system block: markers are not part of the key
    plain = ask(standin_sdk, second_turn, system=[{"type": "text", "text": SYSTEM_1100}], cache_control=CC).usage
    assert (plain.cache_read_input_tokens, plain.cache_creation_input_tokens) == (1111, 0)


def test_lookback_reaches_20_blocks_back(standin_sdk):
    first_turn = [{"role": "user", "content": "question"}]
    written = ask(standin_sdk, first_turn, system=_cached_system(), cache_control=CC).usage
    assert written.cache_creation_input_tokens == 1102
    long_answer = {"role": "assistant", "content": [{"type": "text", "text": f"line {i:02}"} for i in range(25)]}
    later = [*first_turn, long_answer, {"role": "user", "content": "more"}]
    u = ask(standin_sdk, later, system=_cached_system(), cache_control=CC).usage
    # the conversation's previous entry is 26 blocks before the last one: out of reach; the system
    # breakpoint's entry is read instead
    assert u.cache_read_input_tokens == 1100
    assert u.cache_creation_input_tokens == 2 + 25 * 2 + 1
    near = [*first_turn, {"role": "assistant", "content": long_answer["content"][:18]}, {"role": "user", "content": "x"}]
    u = ask(standin_sdk, near, system=_cached_system(), cache_control=CC).usage
    assert u.cache_read_input_tokens == 1102  # 19 blocks back: found


def test_5_minute_entries_expire_unless_read(own_standin, standin_sdk):
    hi = [{"role": "user", "content": "hi"}]
    written = ask(standin_sdk, hi, system=_cached_system()).usage
    assert written.cache_creation_input_tokens == 1100

    own_standin.advance_clock(240)
    assert ask(standin_sdk, hi, system=_cached_system()).usage.cache_read_input_tokens == 1100  # refreshes it
    r = httpx.post(own_standin.url + "/_standin/clock", json={"advance_seconds": 240})
    assert r.json() == {"ok": True, "clock_offset_seconds": 480}
    assert ask(standin_sdk, hi, system=_cached_system()).usage.cache_read_input_tokens == 1100  # 4 min after the read

    own_standin.advance_clock(360)  # 6 minutes later: gone, written again
    missed = ask(standin_sdk, hi, system=_cached_system()).usage
    assert (missed.cache_read_input_tokens, missed.cache_creation_input_tokens) == (0, 1100)

    # the same through the config's absolute offset
    r = httpx.post(own_standin.url + "/_standin/config", json={"clock_offset_seconds": 840 + 301})
    assert r.json()["config"]["clock_offset_seconds"] == 1141
    assert ask(standin_sdk, hi, system=_cached_system()).usage.cache_creation_input_tokens == 1100


def test_1_hour_entries_survive_6_minutes(own_standin, standin_sdk):
    def turn(text: str) -> list[dict]:
        return [{"role": "user", "content": text}]

    first = ask(standin_sdk, turn("first question"), system=_cached_system(ttl="1h"), cache_control=CC).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == 1100
    assert first.cache_creation.ephemeral_5m_input_tokens == 4  # the tail, under the 5m breakpoint
    assert first.cache_creation_input_tokens == 1104

    own_standin.advance_clock(360)
    u = ask(standin_sdk, turn("first question"), system=_cached_system(ttl="1h"), cache_control=CC).usage
    assert u.cache_read_input_tokens == 1100  # the 5m entry of the whole prompt is gone, the 1h one is not
    assert u.cache_creation.ephemeral_5m_input_tokens == 4 and u.cache_creation.ephemeral_1h_input_tokens == 0

    own_standin.advance_clock(3601)
    u = ask(standin_sdk, turn("first question"), system=_cached_system(ttl="1h"), cache_control=CC).usage
    assert u.cache_read_input_tokens == 0 and u.cache_creation.ephemeral_1h_input_tokens == 1100


def test_no_cache_control_no_cache_and_entries_are_per_model(standin_sdk):
    hi = [{"role": "user", "content": "hi"}]
    assert ask(standin_sdk, hi, system=_cached_system()).usage.cache_creation_input_tokens == 1100
    plain = ask(standin_sdk, hi, system=SYSTEM_1100).usage
    assert (plain.cache_read_input_tokens, plain.cache_creation_input_tokens) == (0, 0)
    assert plain.input_tokens == OVERHEAD + 1100 + 1
    other = ask(standin_sdk, hi, model="claude-opus-4-1", system=_cached_system()).usage
    assert (other.cache_read_input_tokens, other.cache_creation_input_tokens) == (0, 1100)


def test_usage_adds_up_to_the_documented_estimate(standin_sdk):
    tools = [{"name": "calculator", "description": "Evaluate arithmetic.",
              "input_schema": {"type": "object", "properties": {"expression": {"type": "string"}}}}]
    tool_json = json.dumps(tools[0], sort_keys=True, separators=(",", ":"))
    system = "You are a careful assistant."
    photo = image(png(3000, 2000))
    messages = [
        {"role": "user", "content": [photo, {"type": "text", "text": "What is 6 * 7 and what is this?"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "6 * 7"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]},
    ]
    tool_use_json = json.dumps({"name": "calculator", "input": {"expression": "6 * 7"}}, sort_keys=True,
                               separators=(",", ":"))
    # 3000 x 2000 -> scale min(1568/3000, sqrt(1.15e6 / 6e6)) -> 1313 x 875 -> ceil(1,148,875 / 750)
    assert image_tokens(3000, 2000) == 1532
    expected = (OVERHEAD + tok(tool_json) + tok(system) + 1532 + tok("What is 6 * 7 and what is this?")
                + tok(tool_use_json) + tok("42"))
    assert counted(standin_sdk, messages, tools=tools, system=system) == expected
    u = ask(standin_sdk, messages, tools=tools, system=system).usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (expected, 0, 0)

    # the other documented image sizes
    assert [image_tokens(*s) for s in [(1, 1), (200, 200), (1000, 1000), (8000, 8000), (8000, 1)]] == [
        1, 54, 1334, 1533, 3]
    # a url image counts as the largest image: 1,534
    url_only = [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "hm"}]}]
    assert counted(standin_sdk, url_only) == OVERHEAD + 1534 + 1

    # with caching, the three counts still add up to the estimate, turn after turn
    cached_messages = [{"role": "user", "content": [photo, {"type": "text", "text": "describe"}]}]
    for reply in ("first", "second", "third"):
        u = ask(standin_sdk, cached_messages, tools=tools, system=system, cache_control=CC).usage
        assert total(u) == counted(standin_sdk, cached_messages, tools=tools, system=system, cache_control=CC)
        assert u.input_tokens >= OVERHEAD
        cached_messages += [{"role": "assistant", "content": f"the {reply} answer"},
                            {"role": "user", "content": f"and {reply}?"}]


def test_compute_usage_is_pure():
    body = {"model": MODEL, "max_tokens": 10, "system": _cached_system(), "messages": [
        {"role": "user", "content": "hi"}]}
    content = [{"type": "text", "text": "hello there"}]
    cache: dict[str, CacheEntry] = {}
    first = compute_usage(body, content, cache, now=0.0)
    assert first == compute_usage(body, content, cache, now=0.0) and cache == {}
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"], first["input_tokens"]) == (
        1100, 0, OVERHEAD + 1)
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": 1100, "ephemeral_1h_input_tokens": 0}
    assert first["output_tokens"] == 3

    prompt = analyse_prompt(body)
    apply_cache_plan(plan_cache(prompt, MODEL, cache, 0.0), cache, 0.0)
    assert [(e.tokens, e.ttl, e.expires_at) for e in cache.values()] == [(1100, "5m", 300.0)]
    assert compute_usage(body, content, cache, now=299.0)["cache_read_input_tokens"] == 1100
    assert compute_usage(body, content, cache, now=300.0)["cache_read_input_tokens"] == 0
    assert compute_usage({**body, "model": HAIKU}, content, cache, now=1.0)["cache_read_input_tokens"] == 0


def test_script_usage_still_overrides(own_standin, standin_sdk):
    own_standin.script([{"text": "hi", "usage": {"input_tokens": 7, "cache_read_input_tokens": 30000}}])
    u = ask(standin_sdk, [{"role": "user", "content": "hello"}]).usage
    assert (u.input_tokens, u.cache_read_input_tokens) == (7, 30000)
