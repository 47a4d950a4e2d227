"""What agno's events say about each run of a turn (``chatcore.turns.tracking``), and the records a
team or an agent turn leaves to be stored (``TeamConversation.records``, ``AgentConversation.records``).

Driven by synthetic events and outputs: plain objects with the attributes agno's carry (``event``,
``run_id``, ``agent_name``/``team_name``, ``error_type``, ``content``, token counts; ``messages``,
``member_responses``, ``status``). No model, no database, no network; the real agno event classes are
used once, to hold the tracker to the names and attributes agno actually has.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from agno.models.message import Message
from agno.run.base import RunStatus

from chatcore.catalog.agents import agent_specs
from chatcore.catalog.teams import team_specs
from chatcore.money.prices import TokenUsage
from chatcore.turns.agent import AgentConversation
from chatcore.turns.team import TeamConversation
from chatcore.turns.tracking import (
    LEADER_ERROR_EVENTS,
    MODEL_CALL_EVENTS,
    TOOL_ERROR_EVENTS,
    RecordedMessage,
    RunError,
    RunRecord,
    RunTracker,
    billed_calls,
    new_messages,
    usage_of,
)

ROOT = str(uuid.UUID("0190b3f4-0000-7000-8000-000000000001"))
MEMBER = str(uuid.UUID("0190b3f4-0000-7000-8000-000000000002"))
OTHER_MEMBER = str(uuid.UUID("0190b3f4-0000-7000-8000-000000000003"))

# usage_of reads the prompt cache TTL from the settings: readable ones, naming nothing real
pytestmark = pytest.mark.usefixtures("dummy_settings")


def event(name: str, run_id: str | None = ROOT, **attrs) -> SimpleNamespace:
    return SimpleNamespace(event=name, run_id=run_id, **attrs)


def model_call(run_id: str, input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0,
               name="ModelRequestCompleted", **attrs) -> SimpleNamespace:
    return event(name, run_id, input_tokens=input_tokens, output_tokens=output_tokens,
                 cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens, **attrs)


def assistant(content: str | None = "answer", **usage) -> Message:
    message = Message(role="assistant", content=content)
    for k, v in usage.items():
        setattr(message.metrics, k, v)
    return message


def tracker_of(*events, root: str = ROOT) -> RunTracker:
    tracker = RunTracker(root_run_id=root)
    for e in events:
        tracker.see(e)
    return tracker


# --------------------------------------------------------------------------- errors


def test_a_run_error_on_the_root_run_fails_the_turn():
    tracker = tracker_of(event("RunStarted", agent_name="assistant"),
                         event("RunError", agent_name="assistant", error_type="model_provider_error",
                               content="prompt is too long"))
    assert tracker.error == RunError("model-error:invalid_request", "prompt is too long")
    assert tracker.errors == {ROOT: tracker.error}


def test_a_team_run_error_on_the_root_run_fails_the_turn():
    tracker = tracker_of(event("TeamRunError", team_name="planner", error_type="RateLimitError", content="slow down"))
    assert tracker.error == RunError("model-error:rate_limited", "slow down")


@pytest.mark.parametrize("attrs, expected", [
    pytest.param({}, RunError("model-error", "the model call failed"), id="no-type-no-content"),
    pytest.param({"error_type": None, "content": ""}, RunError("model-error", "the model call failed"), id="empty"),
    pytest.param({"error_type": "", "content": 42}, RunError("model-error", "42"), id="content-not-a-string"),
])
def test_a_run_error_without_details_still_fails_with_a_message(attrs, expected):
    assert tracker_of(event("RunError", **attrs)).error == expected


def test_an_event_without_a_run_id_belongs_to_the_root_run():
    tracker = tracker_of(event("RunError", run_id=None, content="boom"))
    assert tracker.error == RunError("model-error", "boom") and set(tracker.errors) == {ROOT}


def test_a_members_run_error_does_not_fail_the_turn():
    tracker = tracker_of(event("TeamRunStarted", team_name="planner"),
                         event("RunStarted", MEMBER, agent_name="calculator"),
                         event("RunError", MEMBER, agent_name="calculator", error_type="model_provider_error",
                               content="member boom"))
    assert tracker.error is None
    assert tracker.errors == {MEMBER: RunError("model-error:model_provider_error", "member boom")}
    assert tracker.agent_names == {ROOT: "planner", MEMBER: "calculator"}


def test_tool_call_errors_are_counted_over_every_run_and_fail_nothing():
    tracker = tracker_of(event("ToolCallStarted"), event("ToolCallError", content="division by zero"),
                         event("ToolCallCompleted"), event("TeamToolCallError", team_name="planner"),
                         event("ToolCallError", MEMBER, agent_name="calculator"))
    assert tracker.tool_errors == 3
    assert tracker.error is None and tracker.errors == {}


def test_the_first_name_seen_for_a_run_is_kept():
    tracker = tracker_of(event("RunStarted", MEMBER, agent_name="calculator"),
                         event("RunContent", MEMBER, agent_name="someone-else"),
                         event("RunContent", OTHER_MEMBER, agent_name=None, team_name="planner"),
                         event("RunContent", ROOT))
    assert tracker.agent_names == {MEMBER: "calculator", OTHER_MEMBER: "planner"}


# --------------------------------------------------------------------------- model calls


def test_completed_model_requests_record_their_usage_per_run():
    tracker = tracker_of(
        model_call(ROOT, 1200, 800, 30000, 5000, name="TeamModelRequestCompleted", team_name="planner"),
        model_call(MEMBER, 10, 20, 30, 40, agent_name="calculator"),
        event("ModelRequestStarted", MEMBER),
        model_call(MEMBER, 1, 2, 0, 0),
    )
    assert tracker.model_calls == [(ROOT, TokenUsage(1200, 800, 30000, 5000)), (MEMBER, TokenUsage(10, 20, 30, 40)),
                                   (MEMBER, TokenUsage(1, 2, 0, 0))]
    assert all(isinstance(usage, TokenUsage) for _, usage in tracker.model_calls)


def test_a_model_request_without_token_counts_is_zero_usage():
    tracker = tracker_of(event("ModelRequestCompleted", input_tokens=None, output_tokens=7),
                         event("ModelRequestCompleted", run_id=None))
    assert tracker.model_calls == [(ROOT, TokenUsage(output_tokens=7)), (ROOT, TokenUsage())]


@pytest.mark.parametrize("metrics, expected", [
    pytest.param(None, TokenUsage(), id="none"),
    pytest.param({"input_tokens": 5, "output_tokens": 6, "cache_read_tokens": 7, "cache_write_tokens": 8},
                 TokenUsage(5, 6, 7, 8), id="dict"),
    pytest.param({"input_tokens": None, "total_tokens": 99}, TokenUsage(), id="dict-with-nones"),
    pytest.param(SimpleNamespace(input_tokens=5, output_tokens=6, cache_read_tokens=7, cache_write_tokens=8),
                 TokenUsage(5, 6, 7, 8), id="object"),
    pytest.param(SimpleNamespace(output_tokens=3), TokenUsage(output_tokens=3), id="object-missing-fields"),
])
def test_usage_of_reads_agno_metrics_as_token_usage(metrics, expected):
    assert usage_of(metrics) == expected


def test_with_one_hour_caching_every_cache_write_is_a_one_hour_write(dummy_settings):
    from chatcore.config import get_settings

    dummy_settings.setenv("PROMPT_CACHE_TTL", "1h")
    get_settings.cache_clear()
    metrics = {"input_tokens": 5, "output_tokens": 6, "cache_read_tokens": 7, "cache_write_tokens": 8}
    assert usage_of(metrics) == TokenUsage(5, 6, 7, 8, cache_write_1h_tokens=8)
    dummy_settings.setenv("PROMPT_CACHE_TTL", "5m")
    get_settings.cache_clear()
    assert usage_of(metrics).cache_write_1h_tokens == 0


def test_usage_of_reads_an_agno_message_metrics():
    message = assistant(input_tokens=11, output_tokens=22, cache_read_tokens=33, cache_write_tokens=44,
                        total_tokens=110)
    assert usage_of(message.metrics) == TokenUsage(11, 22, 33, 44)


def test_billed_calls_make_one_assistant_row_per_call_of_that_run_only():
    tracker = tracker_of(model_call(ROOT, 100, 10), model_call(MEMBER, 7, 8), model_call(ROOT, 200, 20, 5, 6))
    rows = billed_calls(tracker, ROOT)
    assert [r.usage for r in rows] == [TokenUsage(100, 10), TokenUsage(200, 20, 5, 6)]
    assert all(isinstance(r, RecordedMessage) and r.message.role == "assistant" and r.message.content is None
               for r in rows)
    assert len({r.message.id for r in rows}) == 2  # two rows, not one message twice
    assert [r.usage for r in billed_calls(tracker, MEMBER)] == [TokenUsage(7, 8)]
    assert billed_calls(tracker, OTHER_MEMBER) == []


# --------------------------------------------------------------------------- new messages


def test_new_messages_drop_the_system_prompt_and_the_input_and_price_assistant_messages():
    history = Message(role="user", content="earlier")
    ours = Message(role="user", content="What is 6 * 7?")
    agnos_copy = Message(role="user", content="What is 6 * 7?")
    call = assistant(None, input_tokens=100, output_tokens=20, cache_read_tokens=300, cache_write_tokens=40)
    tool = Message(role="tool", content="42", tool_call_id="toolu_1")
    answer = assistant("It is 42.", input_tokens=5, output_tokens=6)
    output = SimpleNamespace(messages=[Message(role="system", content="You are..."), history, ours, agnos_copy,
                                       call, tool, answer])
    input_ids = {history.id, ours.id}
    recorded = new_messages(output, input_ids)
    assert [r.message for r in recorded] == [agnos_copy, call, tool, answer]
    assert [r.usage for r in recorded] == [None, TokenUsage(100, 20, 300, 40), None, TokenUsage(5, 6)]
    skipped = new_messages(output, input_ids, skip_user=True)
    assert [r.message for r in skipped] == [call, tool, answer]


def test_new_messages_of_an_output_without_messages_is_empty():
    assert new_messages(SimpleNamespace(messages=None), set()) == []
    assert new_messages(SimpleNamespace(messages=[]), set()) == []


def test_output_of_finds_the_output_of_a_run():
    root_output, member_output = SimpleNamespace(run_id=ROOT), SimpleNamespace(run_id=MEMBER)
    tracker = RunTracker(root_run_id=ROOT, outputs=[member_output, root_output])
    assert tracker.output_of(ROOT) is root_output and tracker.output_of(MEMBER) is member_output
    assert tracker.output_of(OTHER_MEMBER) is None


# --------------------------------------------------------------------------- agno's own events


def test_the_tracker_reads_agnos_real_event_classes():
    """The event names and attributes the tracker relies on are agno's (agent and team classes alike)."""
    from agno.run import agent, team

    assert {agent.RunErrorEvent().event, team.RunErrorEvent().event} == LEADER_ERROR_EVENTS
    assert {agent.ToolCallErrorEvent().event, team.ToolCallErrorEvent().event} == TOOL_ERROR_EVENTS
    assert {agent.ModelRequestCompletedEvent().event, team.ModelRequestCompletedEvent().event} == MODEL_CALL_EVENTS
    tracker = tracker_of(
        team.RunStartedEvent(run_id=ROOT, team_name="planner"),
        agent.RunStartedEvent(run_id=MEMBER, agent_name="calculator"),
        agent.ModelRequestCompletedEvent(run_id=MEMBER, agent_name="calculator", input_tokens=1, output_tokens=2,
                                         cache_read_tokens=3, cache_write_tokens=4),
        agent.ToolCallErrorEvent(run_id=MEMBER, agent_name="calculator"),
        agent.RunErrorEvent(run_id=MEMBER, agent_name="calculator", error_type="X", content="member boom"),
        team.ModelRequestCompletedEvent(run_id=ROOT, team_name="planner", input_tokens=5, output_tokens=6),
        team.ToolCallErrorEvent(run_id=ROOT, team_name="planner"),
        team.RunErrorEvent(run_id=ROOT, team_name="planner", content="leader boom"),
    )
    assert tracker.agent_names == {ROOT: "planner", MEMBER: "calculator"}
    assert tracker.model_calls == [(MEMBER, TokenUsage(1, 2, 3, 4)), (ROOT, TokenUsage(5, 6))]
    assert tracker.tool_errors == 2
    assert tracker.errors[MEMBER] == RunError("model-error:X", "member boom")
    assert tracker.error == RunError("model-error", "leader boom")


# --------------------------------------------------------------------------- a team turn's records


@pytest.fixture()
def team() -> TeamConversation:
    return TeamConversation(team_specs()["planner"])


def member_output(run_id: str = MEMBER, *, agent_name: str | None = "calculator", status=RunStatus.completed,
                  content="42", messages=None) -> SimpleNamespace:
    return SimpleNamespace(run_id=run_id, agent_name=agent_name, status=status, content=content,
                           messages=messages if messages is not None else [
                               Message(role="user", content="compute 6 * 7"),
                               assistant(None, input_tokens=10, output_tokens=2),
                               Message(role="tool", content="42", tool_call_id="toolu_m"),
                               assistant("42", input_tokens=12, output_tokens=3)])


def leader_output(members, *, ours: Message, history=()) -> SimpleNamespace:
    return SimpleNamespace(run_id=ROOT, team_name="planner", status=RunStatus.completed, content="It is 42.",
                           member_responses=members,
                           messages=[Message(role="system", content="You lead..."), *history, ours,
                                     Message(role="user", content=ours.content),  # agno's own copy
                                     assistant(None, input_tokens=100, output_tokens=10),
                                     Message(role="tool", content="42", tool_call_id="toolu_l"),
                                     assistant("It is 42.", input_tokens=110, output_tokens=5)])


def summary(records: list[RunRecord]) -> list[tuple]:
    return [(str(r.run_uuid), r.agent_name, r.model_id, [m.message.role for m in r.messages],
             [m.usage for m in r.messages], r.error) for r in records]


def test_a_completed_team_turn_records_the_leader_then_each_member(team):
    specs = agent_specs()
    ours, history = Message(role="user", content="What is 6 * 7?"), [Message(role="user", content="hi")]
    tracker = RunTracker(root_run_id=ROOT, outputs=[leader_output([member_output()], ours=ours, history=history)])
    records = team.records(tracker, {ours.id, history[0].id})
    assert summary(records) == [
        (ROOT, "planner", team.spec.model_id, ["assistant", "tool", "assistant"],  # agno's user copy skipped
         [TokenUsage(100, 10), None, TokenUsage(110, 5)], None),
        (MEMBER, "calculator", specs["calculator"].model_id, ["user", "assistant", "tool", "assistant"],
         [None, TokenUsage(10, 2), None, TokenUsage(12, 3)], None),
    ]
    assert team.spec.model_id != specs["calculator"].model_id  # so the test tells them apart


def test_a_member_whose_run_errored_without_an_event_is_failed_with_its_billed_calls(team):
    ours = Message(role="user", content="What is 6 * 7?")
    failed = member_output(status=RunStatus.error, content="member boom",
                           messages=[Message(role="user", content="compute 6 * 7")])
    tracker = tracker_of(model_call(MEMBER, 9, 1, agent_name="calculator"))
    tracker.outputs.append(leader_output([failed], ours=ours))
    leader, member = team.records(tracker, {ours.id})
    assert leader.error is None and [m.message.role for m in leader.messages] == ["assistant", "tool", "assistant"]
    assert member.error == RunError("model-error", "member boom")
    assert [(m.message.role, m.usage) for m in member.messages] == [("assistant", TokenUsage(9, 1))]


def test_a_member_run_error_event_names_the_members_failure(team):
    ours = Message(role="user", content="What is 6 * 7?")
    tracker = tracker_of(event("RunError", MEMBER, agent_name="calculator", error_type="overloaded", content="busy"))
    failed = member_output(agent_name=None, status=RunStatus.error, content="ignored: the event says more",
                           messages=[Message(role="user", content="compute 6 * 7"),
                                     assistant(None, input_tokens=10, output_tokens=2)])
    tracker.outputs.append(leader_output([failed], ours=ours))
    _, member = team.records(tracker, {ours.id})
    assert member.agent_name == "calculator"  # from the stream when the output does not say
    assert member.error == RunError("model-error:overloaded", "busy")
    # its own priced messages are kept: no billed-call rows on top
    assert [(m.message.role, m.usage) for m in member.messages] == [("user", None), ("assistant", TokenUsage(10, 2))]


def test_a_failed_leader_stores_its_billed_calls_and_every_member_run_the_stream_showed(team):
    ours = Message(role="user", content="What is 6 * 7?")
    tracker = tracker_of(
        event("TeamRunStarted", team_name="planner"),
        model_call(ROOT, 100, 10, name="TeamModelRequestCompleted"),
        event("RunStarted", MEMBER, agent_name="calculator"),
        model_call(MEMBER, 10, 2),
        model_call(MEMBER, 12, 3),
        event("RunCompleted", MEMBER, agent_name="calculator"),
        event("RunStarted", OTHER_MEMBER, agent_name="converter"),
        event("RunError", OTHER_MEMBER, agent_name="converter", content="member boom"),
        event("TeamRunError", team_name="planner", content="leader boom"),
    )
    # the leader's output (if any) is not used once the turn failed
    tracker.outputs.append(leader_output([member_output()], ours=ours))
    specs = agent_specs()
    assert summary(team.records(tracker, {ours.id})) == [
        (ROOT, "planner", team.spec.model_id, ["assistant"], [TokenUsage(100, 10)],
         RunError("model-error", "leader boom")),
        (MEMBER, "calculator", specs["calculator"].model_id, ["assistant", "assistant"],
         [TokenUsage(10, 2), TokenUsage(12, 3)], None),
        (OTHER_MEMBER, "converter", specs["converter"].model_id, [], [], RunError("model-error", "member boom")),
    ]


def test_a_leader_without_output_is_stored_from_its_billed_calls(team):
    tracker = tracker_of(model_call(ROOT, 100, 10, name="TeamModelRequestCompleted"),
                         model_call(ROOT, 50, 5, name="TeamModelRequestCompleted"))
    (leader,) = team.records(tracker, set())
    assert leader.error is None and [m.usage for m in leader.messages] == [TokenUsage(100, 10), TokenUsage(50, 5)]


def test_a_member_the_catalog_does_not_know_has_no_model(team):
    ours = Message(role="user", content="hi")
    stranger = member_output(agent_name="stranger")
    tracker = RunTracker(root_run_id=ROOT, outputs=[leader_output([stranger], ours=ours)])
    _, member = team.records(tracker, {ours.id})
    assert (member.agent_name, member.model_id) == ("stranger", None)


def test_an_agent_turn_records_one_run():
    # records() needs only the spec: building the agno Agent would configure the process-wide Claude
    # client (cached per model), which a unit test must leave alone
    conversation = AgentConversation.__new__(AgentConversation)
    conversation.spec = agent_specs()["assistant"]
    conversation.name = conversation.spec.name
    ours = Message(role="user", content="What is 6 * 7?")
    output = SimpleNamespace(run_id=ROOT, messages=[Message(role="system", content="..."), ours,
                                                     assistant("42", input_tokens=3, output_tokens=4)])
    (record,) = conversation.records(RunTracker(root_run_id=ROOT, outputs=[output]), {ours.id})
    assert (str(record.run_uuid), record.agent_name, record.model_id, record.error) == (
        ROOT, "assistant", conversation.spec.model_id, None)
    assert [(m.message.role, m.usage) for m in record.messages] == [("assistant", TokenUsage(3, 4))]
    failed = tracker_of(model_call(ROOT, 8, 0), event("RunError", content="boom"))
    failed.outputs.append(output)
    (record,) = conversation.records(failed, {ours.id})
    assert record.error == RunError("model-error", "boom")
    assert [(m.message.content, m.usage) for m in record.messages] == [(None, TokenUsage(8, 0))]


@pytest.mark.parametrize("error_type, message, code, retryable", [
    ("model_provider_error", "Error code: 429 - {'error': {'type': 'rate_limit_error'}}", "model-error:rate_limited", True),
    ("model_provider_error", "Error code: 529 - {'error': {'type': 'overloaded_error'}}", "model-error:overloaded", True),
    ("model_provider_error", "Error code: 500 - {'error': {'type': 'api_error'}}", "model-error:unavailable", True),
    ("APITimeoutError", "Request timed out.", "model-error:unavailable", True),
    ("model_provider_error", "Error code: 400 - {'error': {'type': 'invalid_request_error', 'message': "
                             "'prompt is too long: 70000 tokens > 60000 maximum'}}", "model-error:invalid_request", False),
    ("model_provider_error", "Error code: 413 - {'error': {'type': 'request_too_large'}}",
     "model-error:invalid_request", False),
    ("model_provider_error", "Error code: 401 - {'error': {'type': 'authentication_error'}}",
     "model-error:misconfigured", False),
    ("something_new", "a failure nobody has seen", "model-error:something_new", False),
])
def test_model_errors_have_codes_a_phone_can_act_on(error_type, message, code, retryable):
    from chatcore.turns.outcome import is_retryable
    from chatcore.turns.tracking import model_error_code

    assert model_error_code(error_type, message) == code
    assert is_retryable(code) is retryable
