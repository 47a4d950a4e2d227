"""The model's input built under budgets (``chatcore.turns.context``): whole turns, newest first;
photos beyond the image and byte budgets left out of the model's copy with a placeholder; the token
estimate calibrated by the last stored call; a message too large on its own refused; budgets halved
after the API refused the session's last turns for their size."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from agno.media import Image
from agno.metrics import MessageMetrics
from agno.models.message import Message

from chatcore.errors import ContextTooLarge
from chatcore.turns.begin import _json_chars, _recent_refusals
from chatcore.turns.context import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    PHOTO_PLACEHOLDER,
    REQUEST_OVERHEAD_BYTES,
    STEP_TURNS,
    Budgets,
    Sizes,
    _is_anchor,
    build_context,
    calibration,
    check_fits,
    group_turns,
    is_context_refusal,
    message_bytes,
    message_tokens,
)

BIG = Budgets(max_tokens=1_000_000, max_images=100, max_bytes=10**9)


def photo(size: int = 1000) -> Image:
    return Image(content=b"\xff" * size, mime_type="image/jpeg")


def turn_id(anchor: bool) -> str:
    """A first-message id that makes its turn an anchor (or not): see ``_is_anchor``."""
    while True:
        candidate = str(uuid.uuid4())
        if _is_anchor([Message(id=candidate, role="user", content="")]) == anchor:
            return candidate


def turn(text: str, *, photos: int = 0, answer: str = "ok", tool: bool = False, photo_size: int = 1000,
         metrics: MessageMetrics | None = None, anchor: bool = False) -> list[Message]:
    messages = [Message(id=turn_id(anchor), role="user", content=text,
                        images=[photo(photo_size) for _ in range(photos)] or None)]
    if tool:
        messages += [Message(role="assistant", content=None, tool_calls=[{"id": "t1", "type": "function",
                                                                           "function": {"name": "calculator",
                                                                                        "arguments": "{}"}}]),
                     Message(role="tool", content="42", tool_call_id="t1")]
    messages.append(Message(role="assistant", content=answer, metrics=metrics or MessageMetrics()))
    return messages


def history(*turns: list[Message]) -> list[Message]:
    return [m for t in turns for m in t]


def test_turns_start_at_each_user_message_and_tool_results_stay_inside():
    h = history(turn("a"), turn("b", tool=True), turn("c"))
    assert [[m.role for m in t] for t in group_turns(h)] == [
        ["user", "assistant"], ["user", "assistant", "tool", "assistant"], ["user", "assistant"]]


def test_everything_fits_under_generous_budgets():
    h = history(turn("first fact: the cat is called Mo"), turn("b"), turn("c"))
    ctx = build_context(h, Message(role="user", content="new"), BIG, overhead_tokens=100)
    assert ctx.history == h and ctx.turns_left_out == 0 and ctx.images_left_out == 0


def test_newest_whole_turns_are_kept_when_tokens_run_out():
    h = history(turn("x" * 4000), turn("y" * 4000, tool=True), turn("z" * 4000))
    one_turn = sum(message_tokens(m) for m in group_turns(h)[-1])
    new = Message(role="user", content="new")
    budget = 100 + message_tokens(new) + one_turn + sum(message_tokens(m) for m in group_turns(h)[1]) + 5
    ctx = build_context(h, new, Budgets(budget, 100, 10**9), overhead_tokens=100)
    assert [m.content for m in ctx.history if m.role == "user"] == ["y" * 4000, "z" * 4000]
    assert ctx.turns_left_out == 1 and ctx.tokens <= budget
    # the kept turn with a tool call keeps its tool_use and tool_result together
    assert [m.role for m in ctx.history[:4]] == ["user", "assistant", "tool", "assistant"]


def test_a_turn_that_does_not_fit_stops_the_window_even_if_older_ones_would():
    h = history(turn("short"), turn("x" * 40_000), turn("recent"))
    new = Message(role="user", content="new")
    budget = 100 + message_tokens(new) + sum(message_tokens(m) for m in group_turns(h)[-1]) + 50
    ctx = build_context(h, new, Budgets(budget, 100, 10**9), overhead_tokens=100)
    assert [m.content for m in ctx.history if m.role == "user"] == ["recent"]  # no gap in the window
    assert ctx.turns_left_out == 2


def test_images_beyond_the_image_budget_become_a_placeholder_newest_kept():
    h = history(*(turn(f"album {i}", photos=20) for i in range(3)))
    new = Message(role="user", content="and this one", images=[photo() for _ in range(5)])
    ctx = build_context(h, new, Budgets(1_000_000, 20, 10**9), overhead_tokens=100)
    users = [m for m in ctx.history if m.role == "user"]
    assert [len(m.images or []) for m in users] == [0, 0, 15]  # 5 new + the 15 newest of the last album
    assert ctx.images == 20 and ctx.images_left_out == 45 and ctx.turns_left_out == 0
    assert PHOTO_PLACEHOLDER.format(n=5) in users[2].content and users[2].content.startswith("album 2")
    assert users[0].content.endswith(PHOTO_PLACEHOLDER.format(n=20))


def test_the_byte_budget_leaves_out_old_photos_even_with_room_for_their_number():
    h = history(turn("old", photos=3, photo_size=3_000_000), turn("recent", photos=1, photo_size=3_000_000))
    new = Message(role="user", content="new")
    budget_bytes = REQUEST_OVERHEAD_BYTES + 10 * 1024 * 1024  # room for 2 photos of 4 MB base64
    ctx = build_context(h, new, Budgets(1_000_000, 100, budget_bytes), overhead_tokens=100)
    users = [m for m in ctx.history if m.role == "user"]
    assert [len(m.images or []) for m in users] == [1, 1]
    assert ctx.encoded_bytes <= budget_bytes and ctx.images_left_out == 2


def test_the_estimate_is_scaled_up_by_the_last_stored_calls_real_size():
    text = "x" * 4000
    h = history(turn(text), turn(text))
    estimated = 100 + sum(message_tokens(m) for m in h[:-1])
    real = 2 * estimated
    h[-1].metrics = MessageMetrics(input_tokens=real // 2, cache_read_tokens=real // 4, cache_write_tokens=real // 4)
    assert calibration(h, 100) == pytest.approx(real / estimated, rel=1e-3)
    # an estimate above the real size is never scaled down; absurd factors are capped
    h[-1].metrics = MessageMetrics(input_tokens=1)
    assert calibration(h, 100) == 1.0
    h[-1].metrics = MessageMetrics(input_tokens=100 * estimated)
    assert calibration(h, 100) == 4.0
    assert calibration(history(turn("no usage stored")), 100) == 1.0


def test_calibration_makes_fewer_turns_fit():
    text = "x" * 4000
    h = history(*(turn(text) for _ in range(4)))
    new = Message(role="user", content="new")
    budget = Budgets(100 + message_tokens(new) + sum(message_tokens(m) for m in h) + 10, 100, 10**9)
    assert build_context(h, new, budget, overhead_tokens=100).turns_left_out == 0
    h[-1].metrics = MessageMetrics(input_tokens=3 * (100 + sum(message_tokens(m) for m in h[:-1])))
    ctx = build_context(list(h), new, budget, overhead_tokens=100)
    assert ctx.calibration == pytest.approx(3.0, rel=0.01) and ctx.turns_left_out == 3


def test_calibration_ignores_calls_made_before_the_summary_was_written():
    """A call made before the latest compaction had the turns the summary now stands for in its prompt:
    measured against the shorter history it would look 3x too large, and every turn would shrink."""
    text = "x" * 4000
    h = history(*(turn(text) for _ in range(4)))
    h[-1].metrics = MessageMetrics(input_tokens=3 * (100 + sum(message_tokens(m) for m in h[:-1])))
    h[-1].created_at = 1_000
    assert calibration(h, 100) == pytest.approx(3.0, rel=0.01)
    assert calibration(h, 100, after=1_000) == 1.0  # the summary was written at (or after) that call
    assert calibration(h, 100, after=999) == pytest.approx(3.0, rel=0.01)  # a call after the summary counts


def test_a_message_that_alone_does_not_fit_is_refused_naming_the_limit():
    budgets = Budgets(max_tokens=10_000, max_images=20, max_bytes=24 * 1024 * 1024)
    check_fits(Message(role="user", content="x" * 30_000), budgets, overhead_tokens=1_000)
    with pytest.raises(ContextTooLarge) as info:
        check_fits(Message(role="user", content="x" * 40_000), budgets, overhead_tokens=1_000)
    assert info.value.status == 413 and info.value.code == "context-too-large"
    assert "CONTEXT_MAX_TOKENS" in info.value.detail and info.value.extra["max_tokens"] == 10_000
    with pytest.raises(ContextTooLarge):
        check_fits(Message(role="user", content="x", images=[photo() for _ in range(21)]), budgets,
                   overhead_tokens=1_000)


def test_estimates():
    m = Message(role="user", content="x" * 401, images=[photo(300), photo(301)])
    assert message_tokens(m) == MESSAGE_OVERHEAD_TOKENS + math.ceil(401 / 4) + 2 * IMAGE_TOKENS
    assert message_bytes(m) == 2 * 401 + 4 * 100 + 4 * 101


def test_budgets_halve_for_each_refusal_in_a_row():
    b = Budgets(80_000, 20, 24 * 1024 * 1024)
    assert b.shrunk(0) == b
    assert b.shrunk(1) == Budgets(40_000, 10, 12 * 1024 * 1024)
    assert b.shrunk(2) == Budgets(20_000, 5, 6 * 1024 * 1024)
    assert b.shrunk(30).max_images == 1 and b.shrunk(30).max_tokens == 1_000


def test_recent_refusals_count_only_size_refusals():
    too_long = "Error code: 400 - prompt is too long: 70000 tokens > 60000 maximum"
    assert is_context_refusal(too_long) and is_context_refusal("request_too_large")
    assert is_context_refusal("messages: Too many images in request (max 100)")
    assert not is_context_refusal("overloaded_error") and not is_context_refusal(None)
    assert _recent_refusals([["failed", too_long], ["failed", too_long], ["completed", None]]) == 2
    assert _recent_refusals([["completed", None], ["failed", too_long]]) == 1  # still among the last four
    assert _recent_refusals([["failed", "overloaded"], ["completed", None]]) == 0
    assert _recent_refusals(None) == 0


def test_when_turns_fall_out_the_window_moves_in_steps_and_the_prefix_stays_stable():
    """Turn after turn of long notes: the window starts at an anchor turn, so most requests begin with
    the previous request's history, byte for byte (what the prompt cache reads)."""
    assert STEP_TURNS > 1
    notes = [turn(f"note {i} " + "x" * 4000, anchor=(i % STEP_TURNS == 0)) for i in range(30)]
    per_turn = sum(message_tokens(m) for m in notes[0])
    budget = Budgets(100 + 20 + 8 * per_turn, 100, 10**9)  # room for about 8 turns of history
    starts = []
    for n in range(10, 30):
        ctx = build_context(history(*notes[:n]), Message(role="user", content="next"), budget, overhead_tokens=100)
        first_user = next(m for m in ctx.history if m.role == "user")
        starts.append(int(first_user.content.split()[1]))
        assert ctx.tokens <= budget.max_tokens and ctx.turns_left_out > 0
        assert _is_anchor([first_user])  # the window starts at an anchor
    assert len(set(starts)) <= len(starts) // 2  # the start moved in steps, not every turn
    assert starts == sorted(starts)


def _thinking_turn(text: str, thought: str) -> list[Message]:
    """A turn of an agent that thinks: its tool loop's assistant messages carry the model's blocks."""
    blocks = [{"type": "thinking", "thinking": thought, "signature": "c2ln" * 50},
              {"type": "tool_use", "id": "t1", "name": "calculator", "input": {}}]
    return [Message(id=turn_id(False), role="user", content=text),
            Message(role="assistant", content=None, provider_data={"content_blocks": blocks},
                    tool_calls=[{"id": "t1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}]),
            Message(role="tool", content="42", tool_call_id="t1"),
            Message(role="assistant", content="ok", provider_data={"content_blocks": [
                {"type": "thinking", "thinking": thought, "signature": "c2ln" * 50}, {"type": "text", "text": "ok"}]})]


def test_thinking_is_counted_and_a_tool_loop_is_kept_whole_with_its_thinking_unchanged():
    thought = "a long thought " * 400
    plain, thinking = turn("q", tool=True), _thinking_turn("q", thought)
    # the blocks replayed to the model (the thinking and its signature) are what the estimate counts
    assert sum(message_tokens(m) for m in thinking) > sum(message_tokens(m) for m in plain) + len(thought) // 4
    h = history(_thinking_turn("old", thought), _thinking_turn("new", thought))
    stored = [m.provider_data and dict(m.provider_data) for m in h]
    new = Message(role="user", content="next")
    budget = 100 + message_tokens(new) + sum(message_tokens(m) for m in h[4:]) + 5
    ctx = build_context(h, new, Budgets(budget, 100, 10**9), overhead_tokens=100)
    # the older turn falls out whole; the kept turn's tool loop keeps every message and block as stored
    assert ctx.history == h[4:] and [m.provider_data and dict(m.provider_data) for m in ctx.history] == stored[4:]


def test_the_history_end_gets_a_cache_breakpoint_on_a_copy():
    from chatcore.turns.claude import with_history_breakpoint

    cc = {"type": "ephemeral"}
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "hi"}]}]
    new = {"role": "user", "content": [{"type": "text", "text": "Album 2"}, {"type": "image", "source": {}}]}
    marked = with_history_breakpoint([*history, new], cc)
    assert marked[1]["content"][-1] == {"type": "text", "text": "hi", "cache_control": cc}
    assert "cache_control" not in history[1]["content"][-1]  # agno's (and the stored) blocks unchanged
    assert marked[0] is history[0] and marked[2] is new
    # in a tool loop the turn starts at its own message, not at the tool results
    loop = [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]
    marked = with_history_breakpoint([*history, new, *loop], cc)
    assert "cache_control" in marked[1]["content"][-1] and all("cache_control" not in str(m) for m in marked[2:])
    # a string content becomes one text block; no history, or a thinking block last: nothing to mark
    assert with_history_breakpoint([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, new],
                                   cc)[1]["content"] == [{"type": "text", "text": "b", "cache_control": cc}]
    assert with_history_breakpoint([new], cc) == [new]
    thinking_last = [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hm", "signature": "s"}]}, new]
    assert with_history_breakpoint(thinking_last, cc) == thinking_last


def test_the_reservations_json_length_of_the_history_is_json_dumps_and_stops_past_its_cap():
    history = [{"role": "user", "content": "héllo " * 40, "images": None}, {"role": "assistant", "content": "ok"},
               {"role": "tool", "content": [1, 2.5, {"x": None}]}]
    for items in ([], history[:1], history, history * 50):
        assert _json_chars(items, 10**9) == len(json.dumps(items, default=str))
    # a long history: counted newest first only until the cap is passed (the reservation is capped there)
    long = history * 1000
    assert len(json.dumps(long)) > 10_000 < _json_chars(long, 10_000) < 10_000 + 1_000


def test_a_turns_two_builds_sharing_their_measures_decide_as_fresh_builds_do():
    def make():
        turns = [turn(f"turn {i} " + "words " * (40 * (i % 5)), photos=3 if i % 3 == 0 else 0, tool=i % 2 == 0,
                      anchor=i % 4 == 0) for i in range(40)]
        for i, t in enumerate(turns):  # fixed ids: the two copies pick the same anchors
            t[0].id = f"00000000-0000-0000-0000-{i:012d}"
        return history(*turns)

    new = Message(role="user", content="now")
    budgets = Budgets(max_tokens=15_000, max_images=8, max_bytes=10**9)
    early = Budgets(max_tokens=11_250, max_images=8, max_bytes=10**9)
    shared, fresh = make(), make()
    sizes = Sizes()
    looked = build_context(shared, new, early, overhead_tokens=300, apply=False, sizes=sizes)
    sent = build_context(shared, new, budgets, overhead_tokens=300, sizes=sizes)
    assert looked.turns_left_out == build_context(make(), new, early, overhead_tokens=300, apply=False).turns_left_out
    alone = build_context(fresh, new, budgets, overhead_tokens=300)
    assert sent.turns_left_out > 0 and sent.images_left_out > 0  # the case means something
    assert (sent.tokens, sent.images, sent.encoded_bytes, sent.turns_left_out, sent.images_left_out) == (
        alone.tokens, alone.images, alone.encoded_bytes, alone.turns_left_out, alone.images_left_out)
    assert [(m.role, m.content, len(m.images or [])) for m in sent.history] == [
        (m.role, m.content, len(m.images or [])) for m in alone.history]
