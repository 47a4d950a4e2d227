"""The stand-in's web search (Anthropic's web_search_20250305 server tool), through the real anthropic
SDK: the server_tool_use, web_search_tool_result and cited text blocks, the searches in the usage,
and the API's refusals of altered search results or citations and of more searches than max_uses."""

from __future__ import annotations

import anthropic
import pytest

MODEL = "claude-sonnet-4-5"
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
QUESTION = {"role": "user", "content": "Please search the web for load shedding schedules"}

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def _call(sdk, messages, tools=(SEARCH,)):
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=list(tools), messages=messages) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        return stream.get_final_message(), kinds


def _blocks(message) -> list[dict]:
    return [b.model_dump(exclude_none=True) for b in message.content]


def _search(sdk):
    message, kinds = _call(sdk, [QUESTION])
    return message, kinds, _blocks(message)


def _again(blocks):
    return [QUESTION, {"role": "assistant", "content": blocks}, {"role": "user", "content": "Thanks, and now?"}]


def test_a_search_streams_results_and_a_cited_answer_and_counts_the_search(own_standin, standin_sdk):
    message, kinds, blocks = _search(standin_sdk)
    assert [b["type"] for b in blocks] == ["server_tool_use", "web_search_tool_result", "text", "text"]
    assert blocks[0]["name"] == "web_search" and blocks[0]["input"] == {"query": "load shedding schedules"}
    results = blocks[1]["content"]
    assert blocks[1]["tool_use_id"] == blocks[0]["id"] and len(results) == 2
    assert all(r["url"].startswith("https://") and r["title"] and r["encrypted_content"] and r["page_age"] for r in results)
    citation = blocks[3]["citations"][0]
    assert citation["type"] == "web_search_result_location" and citation["url"] == results[0]["url"]
    assert citation["title"] == results[0]["title"] and citation["cited_text"] == blocks[3]["text"]
    assert citation["encrypted_index"]
    assert "citations_delta" in kinds
    assert message.usage.server_tool_use.web_search_requests == 1
    assert own_standin.requests()[0]["response"]["usage"]["server_tool_use"] == {"web_search_requests": 1}
    second, _ = _call(standin_sdk, _again(blocks))
    assert second.stop_reason == "end_turn" and second.usage.server_tool_use is None


def test_allowed_domains_shape_the_results(standin_sdk):
    _, _, blocks = _call_blocks(standin_sdk, {**SEARCH, "allowed_domains": ["news24.com"]})
    assert all(r["url"].startswith("https://news24.com/") for r in blocks[1]["content"])


def _call_blocks(sdk, tool):
    message, kinds = _call(sdk, [QUESTION], tools=(tool,))
    return message, kinds, _blocks(message)


def test_without_the_tool_there_is_no_search(standin_sdk):
    message, _ = _call(standin_sdk, [QUESTION], tools=())
    assert [b.type for b in message.content] == ["text"] and message.usage.server_tool_use is None


@pytest.mark.parametrize("field", ["encrypted_content", "url", "title"])
def test_an_altered_search_result_is_refused(standin_sdk, field):
    _, _, blocks = _search(standin_sdk)
    result = blocks[1]["content"][0]
    blocks[1]["content"][0] = {**result, field: result[field][:-2] + ("AA" if field == "encrypted_content" else "xx")}
    with pytest.raises(anthropic.BadRequestError, match="encrypted_content"):
        _call(standin_sdk, _again(blocks))


@pytest.mark.parametrize("field", ["encrypted_index", "cited_text"])
def test_an_altered_citation_is_refused(standin_sdk, field):
    _, _, blocks = _search(standin_sdk)
    citation = blocks[3]["citations"][0]
    blocks[3]["citations"][0] = {**citation, field: citation[field][:-2] + "xx"}
    with pytest.raises(anthropic.BadRequestError, match="encrypted_index"):
        _call(standin_sdk, _again(blocks))


def test_more_searches_in_a_turn_than_max_uses_are_refused(standin_sdk):
    _, _, blocks = _search(standin_sdk)
    twice = [*blocks[:2], *_search(standin_sdk)[2][:2], *blocks[2:]]
    messages = [QUESTION, {"role": "assistant", "content": twice}]
    messages.append({"role": "user", "content": "and?"})
    # an earlier turn's searches do not count towards this turn's max_uses
    _call(standin_sdk, messages, tools=({**SEARCH, "max_uses": 1},))
    loop = [QUESTION, {"role": "assistant", "content": twice}]
    with pytest.raises(anthropic.BadRequestError, match="max_uses"):
        _call(standin_sdk, loop, tools=({**SEARCH, "max_uses": 1},))


def test_bad_tool_settings_are_refused(standin_sdk):
    with pytest.raises(anthropic.BadRequestError, match="max_uses"):
        _call(standin_sdk, [QUESTION], tools=({**SEARCH, "max_uses": 0},))
    with pytest.raises(anthropic.BadRequestError, match="allowed_domains or blocked_domains"):
        _call(standin_sdk, [QUESTION], tools=({**SEARCH, "allowed_domains": ["a.org"], "blocked_domains": ["b.org"]},))


def test_a_user_location_is_taken_as_the_api_takes_it(own_standin, standin_sdk):
    located = {**SEARCH, "user_location": {"type": "approximate", "country": "ZA", "city": "Cape Town",
                                           "region": "Western Cape", "timezone": "Africa/Johannesburg"}}
    message, _ = _call(standin_sdk, [QUESTION], tools=(located,))
    assert message.usage.server_tool_use.web_search_requests == 1
    for bad, match in (({"country": "ZA"}, "user_location.type"),
                       ({"type": "exact", "country": "ZA"}, "user_location.type"),
                       ({"type": "approximate", "country": "ZAF"}, "user_location.country"),
                       ({"type": "approximate", "city": ""}, "user_location.city"),
                       ({"type": "approximate", "street": "Long St"}, "user_location.street")):
        with pytest.raises(anthropic.BadRequestError, match=match):
            _call(standin_sdk, [QUESTION], tools=({**SEARCH, "user_location": bad},))


def test_a_stream_cut_after_a_search_bills_the_search(own_standin, standin_sdk):
    own_standin.script([{"search": "load shedding", "cut_after_chars": 10, "text": "The schedule for today is"}])
    with standin_sdk.messages.stream(model=MODEL, max_tokens=1024, tools=[SEARCH], messages=[QUESTION]) as stream:
        events = list(stream)
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["server_tool_use", "web_search_tool_result", "text"]
    assert not [e for e in events if e.type in ("message_delta", "message_stop")]
    [entry] = own_standin.requests()
    assert entry["response"]["cut"] and entry["response"]["usage"]["server_tool_use"] == {"web_search_requests": 1}
