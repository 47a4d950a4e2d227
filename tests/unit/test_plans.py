"""A plan's limits as they stand, the IETF RateLimit fields, what a plan allows, and the in-memory
request counter of the API routes. Pure: the counts come as the turn's first statement reads them
(tests/integration/test_plans.py runs them against Postgres and the served API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chatcore.errors import NotInPlan, RateLimited
from chatcore.money import plans

NOW = datetime(2026, 12, 7, 23, 59, 30, tzinfo=UTC)


def row(**values) -> dict:
    base = {"plan_name": "free", "db_now": NOW, "turns_per_minute": None, "turns_per_day": None,
            "tokens_per_day": None, "concurrent_turns": None, "minute_turns": 0, "minute_first": None,
            "day_turns": 0, "running_turns": 0, "reserved_tokens": 0, "day_tokens": 0}
    return {**base, **values}


def test_a_plan_without_limits_has_no_headers_and_refuses_nothing():
    assert plans.check_limits(row(), "sub") == {}


def test_the_headers_count_this_turn_and_name_each_limit():
    headers = plans.check_limits(row(turns_per_minute=5, minute_turns=1, minute_first=NOW - timedelta(seconds=20),
                                     tokens_per_day=1000, day_tokens=300, reserved_tokens=200,
                                     concurrent_turns=2, running_turns=1), "sub")
    assert headers["RateLimit-Policy"] == ('"turns-per-minute";q=5;w=60, "tokens-per-day";q=1000;w=86400;qu="tokens", '
                                           '"concurrent-turns";q=2;qu="concurrent-requests"')
    # 3 turns a minute left after this one, freeing in 40 s; 500 tokens (midnight in 30 s); no more running
    assert headers["RateLimit"] == ('"turns-per-minute";r=3;t=40, "tokens-per-day";r=500;t=30, '
                                    '"concurrent-turns";r=0;t=5')


@pytest.mark.parametrize(("values", "limit", "retry_after"), [
    ({"turns_per_minute": 5, "minute_turns": 5, "minute_first": NOW - timedelta(seconds=12.5)}, "turns-per-minute", 48),
    ({"turns_per_day": 3, "day_turns": 3}, "turns-per-day", 30),
    ({"tokens_per_day": 1000, "day_tokens": 900, "reserved_tokens": 100}, "tokens-per-day", 30),
    ({"concurrent_turns": 1, "running_turns": 1}, "concurrent-turns", 5),
])
def test_each_limit_refuses_with_when_it_frees_up(values, limit, retry_after):
    with pytest.raises(RateLimited) as refused:
        plans.check_limits(row(**values), "sub")
    problem = refused.value.to_problem()
    assert (problem["status"], problem["limit"], problem["plan"]) == (429, limit, "free")
    assert refused.value.retry_after == problem["retry_after"] == retry_after
    assert f'"{limit}";r=0' in refused.value.headers["RateLimit"]


def test_a_refusal_names_the_limit_that_frees_up_last():
    with pytest.raises(RateLimited) as refused:
        plans.check_limits(row(turns_per_minute=1, minute_turns=1, minute_first=NOW, turns_per_day=1, day_turns=1),
                           "sub")
    assert refused.value.extra["limit"] == "turns-per-minute" and refused.value.retry_after == 60


def test_what_a_plan_allows():
    allowed = row(plan_agents=["assistant"], plan_models=["claude-sonnet-5-5"], thinking_allowed=False,
                  web_search_allowed=False)
    plans.check_allowed(allowed, name="assistant", model_id="claude-sonnet-5-5", thinking=False, web_search=False)
    for kwargs, word in [({"name": "planner"}, "planner"), ({"model_id": "claude-opus"}, "claude-opus"),
                         ({"thinking": True}, "thinking"), ({"web_search": True}, "web search")]:
        call = {"name": "assistant", "model_id": "claude-sonnet-5-5", "thinking": False, "web_search": False, **kwargs}
        with pytest.raises(NotInPlan, match=word):
            plans.check_allowed(allowed, **call)
    plans.check_allowed(row(plan_name=None), name="x", model_id="y", thinking=True, web_search=True)


def test_the_request_counter_frees_up_after_its_minute():
    from chatcore.errors import RateLimited
    from chatcore.web.request_limits import RequestCounter

    now = [100.0]
    counter = RequestCounter(clock=lambda: now[0])
    for _ in range(3):
        counter.hit("a", 3)
    with pytest.raises(RateLimited) as refused:
        counter.hit("a", 3)
    assert refused.value.retry_after == 60
    now[0] += 30
    with pytest.raises(RateLimited) as refused:
        counter.hit("a", 3)
    assert refused.value.retry_after == 30
    counter.hit("b", 3)
    now[0] += 30
    counter.hit("a", 3)
