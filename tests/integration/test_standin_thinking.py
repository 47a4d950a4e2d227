"""The stand-in's extended thinking, through the real anthropic SDK: signed thinking blocks (and
redacted ones) streamed and billed as output, and the API's refusals of a tool loop whose thinking
was changed, reordered or dropped."""

from __future__ import annotations

import anthropic
import pytest

from local.anthropic_standin import thinking_signature

MODEL = "claude-sonnet-5-5"
ADAPTIVE = {"type": "adaptive"}
TOOLS = [{"name": "calculator", "description": "Evaluate an arithmetic expression.",
          "input_schema": {"type": "object", "properties": {"expression": {"type": "string"}}}}]
QUESTION = {"role": "user", "content": "What is 6 * 7?"}

# The SDK warns that an older real model id is deprecated; irrelevant against the stand-in.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def _call(sdk, messages, **extra):
    with sdk.messages.stream(model=MODEL, max_tokens=4096, tools=TOOLS, thinking=ADAPTIVE,
                             messages=messages, **extra) as stream:
        deltas = [e.delta.thinking for e in stream if e.type == "content_block_delta" and e.delta.type == "thinking_delta"]
        return stream.get_final_message(), "".join(deltas)


def _blocks(message) -> list[dict]:
    return [b.model_dump(exclude_none=True) for b in message.content]


def _loop(sdk, **step):
    """A first call that answers with thinking and a calculator call; the tool loop's next messages."""
    first, streamed = _call(sdk, [QUESTION])
    blocks = _blocks(first)
    use = next(b for b in blocks if b["type"] == "tool_use")
    return first, streamed, blocks, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": use["id"], "content": "42"}]}


def test_thinking_is_streamed_signed_and_billed_as_output(own_standin, standin_sdk):
    first, streamed, blocks, result = _loop(standin_sdk)
    thinking = blocks[0]
    assert thinking["type"] == "thinking" and streamed == thinking["thinking"]
    assert thinking["signature"] == thinking_signature(thinking["thinking"])
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    without = own_standin.requests()[0]["response"]
    # the thinking's tokens are in output_tokens: more than the tool call alone costs
    assert first.usage.output_tokens > 1 + len('{"expression": "6 * 7"}') // 10 + 1
    assert without["usage"]["output_tokens"] == first.usage.output_tokens
    second, _ = _call(standin_sdk, [QUESTION, {"role": "assistant", "content": blocks}, result])
    assert second.stop_reason == "end_turn" and second.content[0].type == "thinking"


def test_a_changed_thinking_block_is_refused(standin_sdk):
    _, _, blocks, result = _loop(standin_sdk)
    changed = [{**blocks[0], "thinking": blocks[0]["thinking"] + " (edited)"}, *blocks[1:]]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
        _call(standin_sdk, [QUESTION, {"role": "assistant", "content": changed}, result])


def test_a_dropped_thinking_block_is_refused_in_the_tool_loop(standin_sdk):
    _, _, blocks, result = _loop(standin_sdk)
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        _call(standin_sdk, [QUESTION, {"role": "assistant", "content": blocks[1:]}, result])


def test_a_dropped_redacted_block_or_a_reordered_sequence_is_refused(own_standin, standin_sdk):
    own_standin.script({"tool_use": {"name": "calculator", "input": {"expression": "6 * 7"}},
                        "thinking": "Multiply.", "redacted_thinking": True})
    _, _, blocks, result = _loop(standin_sdk)
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "tool_use"]
    for wrong in ([blocks[0], blocks[2]], [blocks[1], blocks[0], blocks[2]]):
        with pytest.raises(anthropic.BadRequestError, match="cannot be modified"):
            _call(standin_sdk, [QUESTION, {"role": "assistant", "content": wrong}, result])
    forged = [blocks[0], {"type": "redacted_thinking", "data": "Zm9yZ2Vk"}, blocks[2]]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `data` in `redacted_thinking` block"):
        _call(standin_sdk, [QUESTION, {"role": "assistant", "content": forged}, result])
    second, _ = _call(standin_sdk, [QUESTION, {"role": "assistant", "content": blocks}, result])
    assert second.stop_reason == "end_turn"


def test_an_earlier_turns_thinking_may_be_dropped_and_is_not_counted(own_standin, standin_sdk):
    _, _, blocks, result = _loop(standin_sdk)
    answer, _ = _call(standin_sdk, [QUESTION, {"role": "assistant", "content": blocks}, result])
    done = _blocks(answer)
    later = {"role": "user", "content": "Thanks!"}
    kept = [QUESTION, {"role": "assistant", "content": blocks}, result, {"role": "assistant", "content": done}, later]
    dropped = [QUESTION, {"role": "assistant", "content": blocks[1:]}, result,
               {"role": "assistant", "content": done[1:]}, later]
    counts = [standin_sdk.messages.count_tokens(model=MODEL, tools=TOOLS, thinking=ADAPTIVE, messages=m).input_tokens
              for m in (kept, dropped)]
    assert counts[0] == counts[1]  # the API strips earlier turns' thinking from the context
    _call(standin_sdk, dropped)
    _call(standin_sdk, kept)


@pytest.mark.parametrize("thinking, extra, message", [
    ({"type": "enabled", "budget_tokens": 2048}, {}, "thinking.type.enabled is not supported for this model"),
    (ADAPTIVE, {"extra_body": {"temperature": 0.2}}, "`temperature` may only be set to 1"),
    (ADAPTIVE, {"tool_choice": {"type": "any"}}, "tool_choice forces tool use"),
])
def test_thinking_settings_the_api_refuses(standin_sdk, thinking, extra, message):
    with pytest.raises(anthropic.BadRequestError, match=message):
        standin_sdk.messages.create(model=MODEL, max_tokens=4096, tools=TOOLS, thinking=thinking,
                                    messages=[QUESTION], **extra)


def test_a_budget_on_a_model_that_takes_one(standin_sdk):
    older = "claude-sonnet-4-5"
    with pytest.raises(anthropic.BadRequestError, match="must be greater than `thinking.budget_tokens`"):
        standin_sdk.messages.create(model=older, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 2048},
                                    messages=[QUESTION])
    reply = standin_sdk.messages.create(model=older, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
                                        messages=[QUESTION])
    assert reply.content[0].type == "thinking"
