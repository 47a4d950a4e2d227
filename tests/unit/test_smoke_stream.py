"""bin/smoke's reading of a turn's stream (local/smoke.py): the incremental SSE parser, fed the bytes
the API's own framing makes (chatcore.wire.sse), split anywhere; and the checks of a turn's stream:
ids in order, the run id of X-Run-Id, exactly one final event and nothing after it, a clear failure
for TurnFailed, TurnCancelled and a stream that ends (or is cut) without a final event.
The whole command runs against the served API in tests/integration/test_smoke.py."""

from __future__ import annotations

import json

import pytest

from chatcore.wire import sse
from local.smoke import SSEDecoder, SSEEvent, StepFailed, read_turn

RUN = "01a2323f-95a2-7948-986c-1eeb2856b71d"
SESSION = "01a2323f-8b71-791a-85dd-0388a73d820e"
USAGE = {"input_tokens": 10, "output_tokens": 3, "cache_read_tokens": 0, "cache_write_tokens": 0}


def turn_frames(final: str = "TurnCompleted", **final_data) -> list[bytes]:
    frames = [
        sse.frame(1, "RunStarted", {"run_id": RUN, "session_id": SESSION, "agent_name": "assistant"}),
        sse.HEARTBEAT,
        sse.frame(2, "RunContent", {"run_id": RUN, "content": "12 * 7 "}),
        sse.frame(3, "RunContent", {"run_id": RUN, "content": "is 84."}),
        sse.frame(4, "RunCompleted", {"run_id": RUN, "content": "12 * 7 is 84."}),
    ]
    data = {"session_id": SESSION, "run_id": RUN, "usage": USAGE, "cost": {"usd": "0.0001", "zar": "0.0018"}}
    return frames + [sse.frame(5, final, {**data, **final_data})]


def chunks_of(frames: list[bytes], size: int) -> list[str]:
    text = b"".join(frames).decode()
    return [text[i:i + size] for i in range(0, len(text), size)]


def decode_all(chunks: list[str]) -> tuple[list[SSEEvent], SSEDecoder]:
    decoder = SSEDecoder()
    events = [ev for chunk in chunks for ev in decoder.feed(chunk)]
    return events + decoder.end(), decoder


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_the_api_s_frames_decode_the_same_however_they_are_split(size):
    events, decoder = decode_all(chunks_of(turn_frames(), size))
    assert [(e.id, e.event) for e in events] == [("1", "RunStarted"), ("2", "RunContent"), ("3", "RunContent"),
                                                 ("4", "RunCompleted"), ("5", "TurnCompleted")]
    assert json.loads(events[1].data)["content"] == "12 * 7 "
    assert decoder.comments == ["ping"] and not decoder.incomplete


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending_of_the_standard_and_a_crlf_split_between_reads(newline):
    text = f"\ufeff: ping{newline}id: 7{newline}event: RunContent{newline}data: {{\"a\":{newline}data:1}}{newline}{newline}"
    for cut in range(len(text) + 1):  # every place a read can end, "\r" | "\n" of a CRLF included
        events, decoder = decode_all([text[:cut], text[cut:]])
        assert events == [SSEEvent(id="7", event="RunContent", data='{"a":\n1}')], (newline, cut)
        assert decoder.comments == ["ping"]


def test_fields_as_the_standard_reads_them():
    events, _ = decode_all(["data\n\n", "event: x\n\n",  # empty data is an event; no data is none
                            "id: 3\ndata:no space\nretry: 100\nunknown: y\n\n", "data: later\n\n",
                            "id: 4\u0000\ndata: nul id ignored\n\n"])
    assert events == [SSEEvent(None, "message", ""), SSEEvent("3", "message", "no space"),
                      SSEEvent("3", "message", "later"), SSEEvent("3", "message", "nul id ignored")]


def test_an_event_without_its_blank_line_is_not_dispatched_and_is_reported_as_cut():
    events, decoder = decode_all(["id: 1\nevent: RunStarted\ndata: {}\n\nid: 2\nevent: RunContent\ndata: {\"con"])
    assert [e.id for e in events] == ["1"] and decoder.incomplete


def test_a_completed_turn_is_read_with_its_text_pings_and_final_event():
    turn = read_turn(chunks_of(turn_frames(), 5), RUN)
    assert turn.final[0] == "TurnCompleted" and turn.final[1]["usage"] == USAGE
    assert [e[0] for e in turn.events] == [1, 2, 3, 4, 5]
    assert turn.text == "12 * 7 is 84." and turn.pings == 1


@pytest.mark.parametrize("final, data, says", [
    ("TurnFailed", {"error": {"code": "model-error:overloaded", "message": "busy", "retryable": True}},
     "TurnFailed 'model-error:overloaded': busy (retryable: True)"),
    ("TurnCancelled", {}, "the turn was cancelled (TurnCancelled)"),
])
def test_a_failed_or_cancelled_turn_fails_the_step_with_its_error(final, data, says):
    with pytest.raises(StepFailed) as failed:
        read_turn(chunks_of(turn_frames(final, **data), 64), RUN)
    assert says in failed.value.problem


@pytest.mark.parametrize("frames, says", [
    (turn_frames()[:-1], "the stream ended without a final event (TurnCompleted, TurnFailed or TurnCancelled) "
                         "after 4 events; the last was RunCompleted (id 4)"),
    (turn_frames()[:-1] + [turn_frames()[-1][:40]], "after 4 events (cut in the middle of an event)"),
    ([], "the stream ended without a final event (TurnCompleted, TurnFailed or TurnCancelled) after 0 events"),
])
def test_a_stream_that_ends_without_a_final_event_fails(frames, says):
    with pytest.raises(StepFailed) as failed:
        read_turn(chunks_of(frames, 64) if frames else [], RUN)
    assert says in failed.value.problem


def test_the_run_id_must_be_the_x_run_id_header():
    with pytest.raises(StepFailed) as failed:
        read_turn(chunks_of(turn_frames(), 64), "another-run")
    assert f"run_id {RUN!r} is not the X-Run-Id header 'another-run'" in failed.value.problem


@pytest.mark.parametrize("frames, says", [
    (turn_frames() + [sse.frame(6, "RunContent", {"run_id": RUN})], "came after the final event TurnCompleted"),
    ([turn_frames()[0], turn_frames()[3]], "id 3 after 1 (expected 2)"),
    ([sse.frame(2, "RunStarted", {"run_id": RUN})], "id 2 as the first (expected 1)"),
    ([b"id: 1\nevent: RunStarted\ndata: not json\n\n"], "data is not JSON"),
    ([b"id: 1\ndata: {}\n\n"], "has no event name"),
    ([b"event: RunStarted\ndata: {}\n\n"], "has no integer id"),
])
def test_a_malformed_stream_fails_naming_the_event(frames, says):
    with pytest.raises(StepFailed) as failed:
        read_turn(chunks_of(frames, 64), RUN)
    assert says in failed.value.problem


def test_no_final_event_by_the_deadline_fails():
    now = iter(range(100))
    with pytest.raises(StepFailed) as failed:
        read_turn(chunks_of(turn_frames(), 10), RUN, clock=lambda: next(now), deadline=3)
    assert "no final event within the timeout" in failed.value.problem
