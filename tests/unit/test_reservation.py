"""What a budget reservation counts per model call (``turns.claude.dearest_call_usd``): the dearest of the
specs whose calls a turn may make, a team's members included (their thinking, searches and models)."""

from __future__ import annotations

from datetime import datetime, timezone

from chatcore.catalog import participants
from chatcore.catalog.agents import agent_specs
from chatcore.catalog.specs import web_searches_per_call
from chatcore.catalog.teams import team_specs
from chatcore.money.prices import TokenUsage, default_price_book
from chatcore.turns.claude import dearest_call_usd, max_output_tokens


def _one_call(spec, input_tokens: int):
    return default_price_book().cost_usd(spec.model_id, TokenUsage(
        input_tokens=input_tokens, output_tokens=max_output_tokens(spec.thinking_budget),
        web_searches=web_searches_per_call(spec)), datetime.now(timezone.utc)).usd


def test_a_teams_call_is_reserved_at_its_dearest_member():
    newsdesk = team_specs()["newsdesk"]
    assert [s.name for s in participants(newsdesk)] == ["newsdesk", "researcher", "thinker"]
    each = {s.name: _one_call(s, 10_000) for s in participants(newsdesk)}
    # the thinker's thinking budget (and the researcher's searches) cost more than the leader's call
    assert max(each.values()) > each["newsdesk"]
    assert dearest_call_usd(newsdesk, 10_000) == max(each.values())


def test_an_agent_is_reserved_at_its_own_call():
    thinker = agent_specs()["thinker"]
    assert participants(thinker) == (thinker,)
    assert dearest_call_usd(thinker, 5_000) == _one_call(thinker, 5_000)
    planner = team_specs()["planner"]
    assert dearest_call_usd(planner, 5_000) == max(_one_call(s, 5_000) for s in participants(planner))
