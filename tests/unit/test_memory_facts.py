"""What a memory may hold, the same fact told from a new one, and the recall as the model reads it
(``chatcore.memory.facts``): pure, no database."""

from __future__ import annotations

import math
import uuid

import pytest

from chatcore.errors import InvalidInput
from chatcore.memory.facts import (
    RECALL_LEFT_OUT, RECALL_OPENING, clean_text, fact_key, parse_ref, recall_tokens, render, short_id, within_limits,
)


def test_a_memory_is_one_line_of_text_within_its_length():
    assert clean_text("  I live in\nCape Town\t ", 500) == "I live in Cape Town"
    assert clean_text("x" * 500, 500) == "x" * 500
    for bad in ("", " \n\t", "a\x00b", "x" * 501):
        with pytest.raises(InvalidInput) as refused:
            clean_text(bad, 500)
        assert refused.value.extra["field"] == "text"


@pytest.mark.parametrize("data", ["data:image/png;base64,iVBORw0KGgo", "A" * 120, "photo " + "Qk0" * 50])
def test_what_the_model_writes_must_be_words_not_data(data):
    with pytest.raises(InvalidInput, match="photos are never stored"):
        clean_text(data, 500, words_only=True)
    assert clean_text(data, 500) == data  # the user's own edit: bounded by its length alone


def test_the_same_fact_twice_is_told_apart_from_a_new_one():
    assert fact_key("I am allergic to peanuts.") == fact_key("i am  ALLERGIC to peanuts") == "i am allergic to peanuts"
    assert fact_key("Ich heiße Zoë") == fact_key("ich HEISSE zoë")  # case-folded, Unicode-normalised
    assert fact_key("I am allergic to peanuts") != fact_key("I am allergic to cashews")


def test_a_memory_is_named_by_its_id_or_its_last_eight_characters():
    memory_id = uuid.UUID("01968f4e-7a3b-7c2d-9e1f-5a6b7c8d9e0f")
    assert short_id(memory_id) == "7c8d9e0f"
    assert parse_ref(str(memory_id)) == (memory_id, None)
    assert parse_ref("7c8d9e0f") == parse_ref(" [7C8D9E0F] ") == (None, "7c8d9e0f")
    for nothing in ("", "7c8d9e0", "7c8d9e0fa", "someone's", "* "):
        assert parse_ref(nothing) == (None, None)


def _memories(n: int, chars: int) -> list[tuple[uuid.UUID, str]]:
    return [(uuid.uuid4(), f"fact {i:03d} " + "w" * (chars - 9)) for i in range(n)]


@pytest.mark.parametrize(("n", "chars"), [(1, 20), (10, 80), (60, 100), (100, 60)])
def test_the_recall_holds_every_memory_when_they_are_within_the_limits(n, chars):
    memories = _memories(n, chars)
    texts = [t for _, t in memories]
    text = render(memories, max_tokens=10_000)
    assert text.splitlines() == [RECALL_OPENING, *(f"[{short_id(i)}] {t}" for i, t in memories)]
    assert recall_tokens(texts) == math.ceil(len(text) / 4)  # the estimate is the rendering's
    assert within_limits(texts, max_tokens=recall_tokens(texts), max_count=n)
    assert not within_limits(texts, max_tokens=recall_tokens(texts) - 1, max_count=n)
    assert not within_limits(texts, max_tokens=10_000, max_count=n - 1)
    assert render([], 10_000) == "" and recall_tokens([]) == 0


def test_a_recall_over_a_lowered_budget_shows_the_newest_and_says_how_many_it_left_out():
    memories = _memories(50, 100)
    text = render(memories, max_tokens=500)
    lines = text.splitlines()
    assert math.ceil(len(text) / 4) <= 500
    kept = len(lines) - 2
    assert lines[1] == RECALL_LEFT_OUT.format(n=50 - kept) and 0 < kept < 50
    assert lines[2:] == [f"[{short_id(i)}] {t}" for i, t in memories[-kept:]]  # the newest, oldest first


def test_a_consolidating_models_answer_is_taken_only_when_every_line_fits(dummy_settings):
    from chatcore.config import get_settings
    from chatcore.turns.memory import consolidation_prompt, parse_consolidation

    prompt = consolidation_prompt(["I like tea", "I like rooibos tea"])
    assert "at most 50 memories of at most 500 characters each" in prompt and prompt.endswith(
        "- I like tea\n- I like rooibos tea")
    answer = "Here you are:\n- I like tea, rooibos above all\n* [0a1b2c3d] My daughter is called Lerato\n" \
             "1. I LIKE TEA, ROOIBOS ABOVE ALL.\n"
    assert parse_consolidation(answer) == ["I like tea, rooibos above all", "My daughter is called Lerato"]
    for unusable in ("", "I would rather not.", f"- {'x' * 501}", "- data:image/png;base64,iVBORw0KGgo",
                     "\n".join(f"- fact {i}" for i in range(get_settings().memory_max_count + 1))):
        assert parse_consolidation(unusable) is None, unusable
    dummy_settings.setenv("MEMORY_MAX_TOKENS", "200")
    get_settings.cache_clear()
    assert parse_consolidation("\n".join(f"- a fact of some length, number {i}" for i in range(30))) is None
