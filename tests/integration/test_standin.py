"""The local Anthropic stand-in, driven by the real anthropic SDK and a real agno Agent."""

from __future__ import annotations

import ast
import asyncio
import json
import operator
import re
import urllib.error
import urllib.request

import anthropic
import pytest

MODEL = "claude-sonnet-4-5"

# The SDK warns that this real model id is deprecated; irrelevant against the stand-in.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def _http(server, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("unsupported expression")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Args:
        expression: the arithmetic expression, e.g. "2 * (3 + 4)".
    """
    value = _eval(ast.parse(expression.replace("^", "**"), mode="eval"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _ask(client, text: str, **kw):
    return client.messages.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": text}], **kw
    )


# --------------------------------------------------------------------------- SDK


def test_health(own_standin):
    assert _http(own_standin, "GET", "/_standin/health") == {"ok": True, "server": "anthropic-standin"}


def test_streaming_text_with_usage(own_standin, standin_sdk):
    with standin_sdk.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Hello there, stand-in"}]
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(deltas) > 2, deltas
    text = "".join(deltas)
    assert text.startswith("Stand-in model reply to: Hello there, stand-in.")
    assert "0 image(s)" in text
    assert final.model == MODEL
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == text
    u = final.usage
    assert u.input_tokens > 0 and u.output_tokens > 1
    # no cache_control in the request: nothing is cached, as with the real API
    assert u.cache_read_input_tokens == 0 and u.cache_creation_input_tokens == 0

    [rec] = own_standin.requests()
    assert rec["body"]["stream"] is True
    assert rec["response"]["usage"] == u.model_dump(include=set(rec["response"]["usage"]))
    assert rec["headers"].get("x-api-key", rec["headers"].get("authorization")) == "***"


def test_non_streaming_counts_images(standin_sdk):
    from tests.support.images import SMALL_PNG, b64

    png = b64(SMALL_PNG)  # a real 8x8 PNG (the real API refuses a bare signature)
    msg = standin_sdk.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "text", "text": "What is in this picture?"},
                ],
            }
        ],
    )
    assert "1 image(s)" in msg.content[0].text
    assert f"total bytes {len(SMALL_PNG)}" in msg.content[0].text


def test_usage_distinct_and_deterministic(standin_sdk):
    first = _ask(standin_sdk, "one")
    second = standin_sdk.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": first.content[0].text},
            {"role": "user", "content": "two"},
        ],
    )
    again = _ask(standin_sdk, "one")
    assert first.usage != second.usage
    assert first.usage.input_tokens != second.usage.input_tokens  # the longer prompt costs more
    assert first.usage == again.usage


def test_default_calculator_tool_use(standin_sdk):
    tools = [{"name": "calculator", "input_schema": {"type": "object", "properties": {"expression": {"type": "string"}}}}]
    with standin_sdk.messages.stream(
        model=MODEL, max_tokens=64, tools=tools, messages=[{"role": "user", "content": "What is 12 * (3 + 4)?"}]
    ) as stream:
        final = stream.get_final_message()
    [block] = final.content
    assert final.stop_reason == "tool_use"
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert block.input == {"expression": "12 * (3 + 4)"}


def test_script_queue_and_reset(own_standin, standin_sdk):
    own_standin.script(
        [
            {"text": "scripted words one two three four", "usage": {"output_tokens": 99}},
            {"tool_use": {"name": "lookup", "input": {"q": 'a "quoted" query'}}},
        ]
    )
    first = _ask(standin_sdk, "hi")
    assert first.content[0].text == "scripted words one two three four"
    assert first.usage.output_tokens == 99

    with standin_sdk.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        second = stream.get_final_message()
    assert second.content[0].name == "lookup"
    assert second.content[0].input == {"q": 'a "quoted" query'}

    # queue empty again: default behaviour
    assert _ask(standin_sdk, "hi").content[0].text.startswith("Stand-in model reply to: hi.")

    recorded = own_standin.requests()
    assert [r["response"]["stop_reason"] for r in recorded] == ["end_turn", "tool_use", "end_turn"]
    assert _http(own_standin, "GET", "/_standin/requests") == recorded

    # the HTTP control endpoints
    assert _http(own_standin, "POST", "/_standin/script", [{"text": "via http"}])["ok"] is True
    assert _ask(standin_sdk, "x").content[0].text == "via http"
    assert _http(own_standin, "POST", "/_standin/reset", {}) == {"ok": True}
    assert own_standin.requests() == []


def test_scripted_http_error(own_standin, standin_sdk):
    own_standin.script([{"error": {"status": 400, "type": "invalid_request_error", "message": "bad thing"}}])
    with pytest.raises(anthropic.BadRequestError) as info:
        _ask(standin_sdk, "hi")
    assert "bad thing" in str(info.value)
    assert info.value.request_id and info.value.request_id.startswith("req_")
    [rec] = own_standin.requests()
    assert rec["response"]["error"]["type"] == "invalid_request_error"


def test_scripted_stream_error_mid_stream(own_standin, standin_sdk):
    own_standin.script([{"stream_error_after_chars": 12, "text": "alpha beta gamma delta epsilon zeta"}])
    received = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with standin_sdk.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert "overloaded_error" in str(info.value)
    assert "".join(received) == "alpha beta g"
    # the server is still fine afterwards
    assert _ask(standin_sdk, "after").content[0].text.startswith("Stand-in model reply to: after.")


def test_invalid_json_and_count_tokens(own_standin, standin_sdk):
    req = urllib.request.Request(
        own_standin.url + "/v1/messages", data=b"{not json", method="POST", headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400
    assert json.loads(info.value.read())["error"]["type"] == "invalid_request_error"

    counted = standin_sdk.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > 0


# --------------------------------------------------------------------------- agno


def test_agno_agent_tool_round_trip(own_standin):
    from agno.agent import Agent
    from agno.models.anthropic import Claude

    agent = Agent(
        model=Claude(id=MODEL, api_key="test", client_params={"base_url": own_standin.url}),
        tools=[calculator],
        telemetry=False,
    )

    async def run():
        events = []
        async for event in agent.arun("What is 6 * (3 + 4)?", stream=True, stream_events=True):
            events.append(event)
        return events

    events = asyncio.run(run())
    names = [e.event for e in events]
    assert "ToolCallStarted" in names and "ToolCallCompleted" in names
    assert names[-1] == "RunCompleted", names
    started = next(e for e in events if e.event == "ToolCallStarted")
    assert started.tool.tool_name == "calculator"
    assert started.tool.tool_args == {"expression": "6 * (3 + 4)"}
    completed = next(e for e in events if e.event == "ToolCallCompleted")
    assert completed.tool.result == "42"

    final = events[-1]
    assert "The tool returned: 42" in final.content
    # this agent asks for no caching (and its prompt is under the 1,024-token minimum): none happens
    assert final.metrics.input_tokens > 0
    assert final.metrics.cache_read_tokens == 0 and final.metrics.cache_write_tokens == 0

    recorded = own_standin.requests()
    assert len(recorded) == 2
    assert recorded[0]["response"]["stop_reason"] == "tool_use"
    assert recorded[1]["body"]["messages"][-1]["content"][0]["type"] == "tool_result"
    assert recorded[0]["response"]["usage"] != recorded[1]["response"]["usage"]


def test_agno_team_delegates_to_member(own_standin):
    from agno.agent import Agent
    from agno.models.anthropic import Claude
    from agno.team import Team

    def model():
        return Claude(id=MODEL, api_key="test", client_params={"base_url": own_standin.url})

    team = Team(members=[Agent(name="Math Helper", model=model(), telemetry=False)], model=model(), telemetry=False)

    async def run():
        return [e async for e in team.arun("please help with sums", stream=True, stream_events=True)]

    events = asyncio.run(run())
    started = next(e for e in events if e.event == "TeamToolCallStarted")
    assert started.tool.tool_name == "delegate_task_to_member"
    assert started.tool.tool_args == {"member_id": "math-helper", "task": "please help with sums"}
    assert any(e.event == "RunCompleted" for e in events)  # the member's run
    assert events[-1].event == "TeamRunCompleted"
    assert events[-1].content.startswith("The tool returned: Stand-in model reply to: please help with sums.")


@pytest.mark.parametrize("raw", [b"", b"null", b"42", b"[1]", b"{not json"])
def test_a_control_body_the_standin_refuses_is_answered_400_at_once(own_standin, raw):
    req = urllib.request.Request(own_standin.url + "/_standin/script", data=raw, method="POST",
                                 headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400
    assert json.loads(info.value.read())["error"]["type"] == "invalid_request_error"


MEMORY_TOOLS = [{"name": name, "description": name, "input_schema": {"type": "object", "properties": {}}}
                for name in ("remember", "update_memory", "forget_memory")]
RECALL = ("[What you remember about this user from earlier conversations, one memory a line: [id] memory.]\n"
          "[0a1b2c3d] I like rooibos tea\n[4e5f6a7b] My daughter is called Lerato")


def _reply(sdk, text: str, *, system: str = "", tools=None, recall: bool = False):
    messages = [{"role": "user", "content": RECALL}, {"role": "assistant", "content": "Noted."}] if recall else []
    return sdk.messages.create(model=MODEL, max_tokens=500, system=system or anthropic.NOT_GIVEN,
                               tools=tools or anthropic.NOT_GIVEN,
                               messages=[*messages, {"role": "user", "content": text}]).content[0]


def test_the_default_writes_and_reads_memories_by_rule(standin_sdk):
    call = _reply(standin_sdk, "Please remember that I like rooibos tea.", tools=MEMORY_TOOLS)
    assert (call.type, call.name, call.input) == ("tool_use", "remember", {"text": "I like rooibos tea"})
    call = _reply(standin_sdk, "Forget that I like tea", tools=MEMORY_TOOLS, recall=True)
    assert (call.name, call.input) == ("forget_memory", {"memory_id": "0a1b2c3d"})
    answer = _reply(standin_sdk, "What is my daughter called?", tools=MEMORY_TOOLS, recall=True)
    assert answer.text == "From what I remember: My daughter is called Lerato."
    # without the recall, or with arithmetic, it answers as it otherwise would
    assert _reply(standin_sdk, "What is my daughter called?").text.startswith("Stand-in model reply to")
    assert _reply(standin_sdk, "What is 2 * 3 for Lerato?", recall=True).text.startswith("Stand-in model reply")


def test_a_consolidation_merges_by_rule_within_the_limits_it_is_given(standin_sdk):
    from local.anthropic_standin import consolidation_reply

    memories = ["I am allergic to peanuts", "My daughter is called Lerato", "i am allergic to peanuts!"] + [
        f"I have visited the town of Place{i} on my trip number {i}" for i in range(60)]
    prompt = ("Consolidate these memories into at most 10 memories of at most 300 characters each, 700 "
              "characters in all.\n\nThe memories, oldest first (the last one is new):\n"
              + "\n".join(f"- {m}" for m in memories))
    text = _reply(standin_sdk, prompt, system="You consolidate the memories an assistant keeps.").text
    lines = [line[2:] for line in text.splitlines()]
    assert lines[:2] == ["My daughter is called Lerato", "i am allergic to peanuts!"]  # once, the newest wording
    visited = lines[2]
    assert visited.startswith("I have visited the town of Place0 on my trip number 0, and ")
    assert visited.endswith("the town of Place59 on my trip number 59") and len(visited) <= 300
    assert sum(map(len, lines)) <= 700 and len(lines) == 3
    # consolidated again with a new fact: the folded count carries on, within the limits
    again = consolidation_reply(prompt.split("\n\n")[0] + "\n\nThe memories:\n" + "\n".join(
        f"- {line}" for line in [*lines, "I have visited the town of Place60 on my trip number 60"]))
    folded = [int(n) for n in re.findall(r"and (\d+) more", again)]
    assert len(folded) == 1 and folded[0] > int(re.search(r"and (\d+) more", visited).group(1))
    assert again.rstrip().endswith("Place60 on my trip number 60") and all(
        len(line) <= 302 for line in again.splitlines())


REMINDER_TOOL = [{"name": "set_reminder", "description": "set a reminder",
                  "input_schema": {"type": "object", "properties": {"text": {"type": "string"}, "time": {"type": "string"}}}}]


def test_the_default_sets_a_reminder_when_asked_and_refuses_its_call_left_unanswered(standin_sdk):
    call = _reply(standin_sdk, "Remind me to call mom at 18:00", tools=REMINDER_TOOL)
    assert (call.type, call.name, call.input) == ("tool_use", "set_reminder", {"text": "call mom", "time": "18:00"})
    call = _reply(standin_sdk, "please remind me to take the bread out at 6:30pm.", tools=REMINDER_TOOL)
    assert call.input == {"text": "take the bread out", "time": "18:30"}
    # not offered, or no time: no call
    assert _reply(standin_sdk, "Remind me to call mom at 18:00").type == "text"
    assert _reply(standin_sdk, "Remind me to call mom", tools=REMINDER_TOOL).type == "text"
    # the call must be answered by a tool_result right after it, as the real API requires
    use = {"type": "tool_use", "id": "toolu_pending", "name": "set_reminder", "input": {"text": "call mom", "time": "18:00"}}
    with pytest.raises(anthropic.BadRequestError, match="`tool_use` ids were found without `tool_result` blocks"):
        standin_sdk.messages.create(model=MODEL, max_tokens=100, tools=REMINDER_TOOL, messages=[
            {"role": "user", "content": "Remind me to call mom at 18:00"}, {"role": "assistant", "content": [use]},
            {"role": "user", "content": "never mind"}])
    declined = standin_sdk.messages.create(model=MODEL, max_tokens=100, tools=REMINDER_TOOL, messages=[
        {"role": "user", "content": "Remind me to call mom at 18:00"}, {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_pending",
                                      "content": "The user declined this action, so it was not done."}]}])
    assert declined.content[0].text.startswith("The tool returned: The user declined")


def test_a_stalling_step_sends_its_first_delta_then_waits_for_release(own_standin, standin_sdk):
    """``stall_after_first_delta``: the first text delta is out while the stand-in stalls; the rest
    follows ``release()`` (or ``POST /_standin/release``). The record notes the first delta's clock."""
    import time

    own_standin.script([{"text": "one two three four five six", "stall_after_first_delta": True,
                         "stall_seconds": 60}])
    before = time.monotonic()
    with standin_sdk.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        texts = stream.text_stream
        first = next(texts)
        assert first == "one two three " and own_standin.stalled()
        assert _http(own_standin, "POST", "/_standin/release") == {"ok": True}
        rest = list(texts)
    assert "".join([first, *rest]) == "one two three four five six" and not own_standin.stalled()
    [rec] = own_standin.requests()
    assert before < rec["first_text_at"] < time.monotonic()


def test_a_response_without_text_notes_no_first_text(own_standin, standin_sdk):
    own_standin.script([{"tool_use": {"name": "calculator", "input": {"expression": "1+1"}}}])
    tools = [{"name": "calculator", "description": "calc", "input_schema": {"type": "object"}}]
    with standin_sdk.messages.stream(model=MODEL, max_tokens=256, tools=tools,
                                     messages=[{"role": "user", "content": "1+1"}]) as stream:
        stream.get_final_message()
    [rec] = own_standin.requests()
    assert rec["first_text_at"] is None
