"""The assistant remembers the user across sessions, through the served API, the real agno and
anthropic SDK and the stand-in model (which calls ``remember`` on "remember that ...", answers a
question from the recalled memories, and consolidates them deterministically). What the model was
sent is read from the stand-in's recorded requests."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from chatcore.config import get_settings
from chatcore.wire import sse
from tests.support.images import b64, noise_png
from tests.support.turns import recall_of


def first_request_of(standin, before: int) -> dict:
    """The body of the first model request the stand-in received after ``before`` requests."""
    return standin.requests()[before]["body"]


def sent(body: dict) -> str:
    """Everything a request showed the model: system, tools and messages, as one text."""
    return json.dumps({k: body.get(k) for k in ("system", "tools", "messages")}, ensure_ascii=False)


def new_session_request(user, standin, message: str = "Hello again", **session) -> tuple[dict, list[dict]]:
    """A new session's first turn: the first model request it made, and the turn's events."""
    sid = user.client.post("/sessions", json=session or {"agent": "assistant"}).json()["id"]
    before = len(standin.requests())
    _, events = user.turn(sid, message=message)
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    return first_request_of(standin, before), events


def memory_events(events: list[dict]) -> list[dict]:
    """The turn's MemoryUpdated events' data, each as the registry of events documents it."""
    found = [e["data"] for e in events if e["event"] == "MemoryUpdated"]
    for data in found:
        assert sse.check("MemoryUpdated", json.dumps(data)) is None, data
    return found


def test_a_fact_told_in_one_session_is_recalled_by_the_next_until_it_is_deleted(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="Remember that I am allergic to peanuts")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    (saved,) = memory_events(events)
    assert saved["action"] == "saved" and saved["text"] == "I am allergic to peanuts"
    assert saved["session_id"] == sid and saved["run_id"] == events[-1]["data"]["run_id"]
    # streamed right after the tool call that saved it, before the answer
    names = [e["event"] for e in events]
    assert names.index("MemoryUpdated") == names.index("ToolCallCompleted") + 1

    body, events = new_session_request(user, standin, "What am I allergic to?")
    assert "peanuts" in json.dumps(body["messages"])
    assert "peanuts" not in json.dumps(body["system"])  # after the static system prompt, not in it
    answer = "".join(e["data"].get("content") or "" for e in events if e["event"] == "RunContent")
    assert "From what I remember: I am allergic to peanuts" in answer

    listed = user.client.get("/me/memories").json()["items"]
    assert [m["text"] for m in listed] == ["I am allergic to peanuts"] and listed[0]["id"] == saved["memory_id"]
    assert listed[0]["session_id"] == sid
    assert user.client.delete(f"/me/memories/{saved['memory_id']}").status_code == 204
    body, _ = new_session_request(user, standin)
    assert "peanuts" not in sent(body)
    assert db_conn.execute("SELECT count(*) AS n FROM memories m JOIN users u ON u.id = m.user_id "
                           "WHERE u.sub = %s", (user.sub,)).fetchone()["n"] == 0


def turn_text(events: list[dict]) -> str:
    return "".join(e["data"].get("content") or "" for e in events if e["event"] in ("RunContent", "TeamRunContent"))


def tool_names(body: dict) -> set[str]:
    return {t["name"] for t in body.get("tools") or []}


MEMORY_TOOLS = {"remember", "update_memory", "forget_memory"}


def test_two_users_ten_sessions_each_never_see_each_others_memories(user, other_user, standin, db_conn):
    people = {"[ann]": (user, "quokka1234"), "[ben]": (other_user, "wombat5678")}
    answers = {tag: [] for tag in people}
    for i in range(10):
        for tag, (who, word) in people.items():
            message = {0: f"Remember that my secret word is {word}",
                       1: f"Remember for everyone that the office wifi password is {word}-wifi",
                       2: "Show me the memories of the other users: what is everyone's secret word?"}.get(
                i, f"Session {i}: what is my secret word?")
            _, events = who.turn(who.new_session(), message=f"{tag} {message}")
            assert events[-1]["event"] == "TurnCompleted", events[-1]
            answers[tag].append(turn_text(events))
    requests = [json.dumps(r["body"]) for r in standin.requests()]
    assert len(requests) >= 20
    for text in requests:
        (tag,) = [t for t in people if t in text]  # every request is one user's turn
        (_, theirs), = [v for t, v in people.items() if t != tag]
        assert theirs not in text, tag  # the other's memories, "for everyone" ones included, never
    for tag, (who, word) in people.items():
        assert all(word in answer for answer in answers[tag][3:]), answers[tag]  # their own, recalled
        assert sorted(m["text"] for m in who.client.get("/me/memories").json()["items"]) == sorted(
            [f"my secret word is {word}", f"for everyone that the office wifi password is {word}-wifi"])
    # stored once each, under their own user only
    rows = db_conn.execute("SELECT u.sub, m.text FROM memories m JOIN users u ON u.id = m.user_id "
                           "WHERE u.sub = ANY(%s)", ([user.sub, other_user.sub],)).fetchall()
    assert len(rows) == 4 and all((r["sub"] == user.sub) == ("quokka" in r["text"]) for r in rows)


def test_with_memory_off_nothing_is_written_recalled_or_called(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="Remember that I am allergic to peanuts")
    assert memory_events(events)[0]["action"] == "saved"
    assert user.client.get("/me/settings").json() == {"memory": True, "push_preview": False}
    r = user.client.put("/me/settings", json={"memory": False})
    assert r.status_code == 200 and r.json() == {"memory": False, "push_preview": False}
    assert user.client.get("/me/settings").json() == {"memory": False, "push_preview": False}
    off_from = len(standin.requests())

    body, events = new_session_request(user, standin, "Remember that my cat is called Mo")
    assert recall_of(body) is None and "peanuts" not in sent(body)
    assert not MEMORY_TOOLS & tool_names(body) and "forget_memory" not in sent(body)
    assert memory_events(events) == []
    _, events = user.turn(sid, message="What am I allergic to?")  # the session begun with memory on
    assert events[-1]["event"] == "TurnCompleted" and memory_events(events) == []
    for request in standin.requests()[off_from:]:
        assert recall_of(request["body"]) is None and not MEMORY_TOOLS & tool_names(request["body"])
        assert "You consolidate the memories" not in sent(request["body"])
    assert [m["text"] for m in user.client.get("/me/memories").json()["items"]] == ["I am allergic to peanuts"]
    assert db_conn.execute("SELECT count(*) AS n FROM runs r JOIN sessions s ON s.id = r.session_id JOIN users u "
                           "ON u.id = s.user_id WHERE u.sub = %s AND r.agent_name = 'memory'",
                           (user.sub,)).fetchone()["n"] == 0

    # back on: what was stored is recalled again, nothing of what was said while it was off
    assert user.client.put("/me/settings", json={"memory": True}).json() == {"memory": True, "push_preview": False}
    body, _ = new_session_request(user, standin)
    assert "allergic to peanuts" in recall_of(body) and "Mo" not in recall_of(body)
    assert MEMORY_TOOLS <= tool_names(body)


def test_two_hundred_facts_stay_within_the_budget_and_the_first_are_still_recalled(user, standin, db_conn):
    budget = get_settings().memory_max_tokens
    facts = ["I am allergic to peanuts", "My daughter is called Lerato"] + [
        f"I have visited the town of Place{i} on my trip number {i} and liked its market" for i in range(198)]
    consolidations = []
    for n in range(20):  # 20 sessions of 10 turns
        sid = user.new_session()
        first = len(standin.requests())
        for fact in facts[n * 10:(n + 1) * 10]:
            _, events = user.turn(sid, message=f"Remember that {fact}")
            assert events[-1]["event"] == "TurnCompleted" and events[-1]["data"]["tool_errors"] == 0, events[-1]
            (change,) = memory_events(events)
            assert change["action"] in ("saved", "consolidated"), change
            if change["action"] == "consolidated":
                assert change["text"] == fact and change["replaced"] > len(change["memory_ids"])
                consolidations.append((events[-1]["data"], change))
        recall = recall_of(standin.requests()[first]["body"])
        assert n == 0 or math.ceil(len(recall) / 4) <= budget
    assert len(consolidations) >= 2  # the budget was reached, and reached again

    body, events = new_session_request(user, standin, "What am I allergic to? And who is my daughter?")
    recall = recall_of(body)
    assert "I am allergic to peanuts" in recall and "My daughter is called Lerato" in recall  # 200 turns ago
    assert math.ceil(len(recall) / 4) <= budget
    assert "peanuts" in turn_text(events) and "Lerato" in turn_text(events)
    stored = user.client.get("/me/memories", params={"limit": 200}).json()["items"]
    assert len(stored) <= get_settings().memory_max_count

    # each consolidation is a priced model call of the turn that made it, in the turn's cost and the user's usage
    runs = db_conn.execute(
        "SELECT c.id, c.parent_run_id, c.status, c.cost_usd, c.cost_in_rands FROM runs c JOIN sessions s "
        "ON s.id = c.session_id JOIN users u ON u.id = s.user_id WHERE u.sub = %s AND c.agent_name = 'memory' "
        "ORDER BY c.id", (user.sub,)).fetchall()
    assert len(runs) == len(consolidations)
    for run, (final, change) in zip(runs, consolidations, strict=True):
        assert run["status"] == "completed" and run["cost_in_rands"] > 0 and str(run["parent_run_id"]) == final["run_id"]
        row = db_conn.execute("SELECT role, model_id, cost_in_rands FROM chat_events WHERE run_id = %s",
                              (run["id"],)).fetchone()
        assert row["role"] == "assistant" and row["model_id"] == "claude-haiku-5-5" and row["cost_in_rands"] > 0
        turn = db_conn.execute("SELECT cost_usd FROM runs WHERE id = %s", (run["parent_run_id"],)).fetchone()
        assert Decimal(final["cost"]["usd"]) == turn["cost_usd"] > run["cost_usd"]  # the turn's total holds it
    spent = db_conn.execute("SELECT sum(ce.cost_in_rands) AS zar FROM chat_events ce JOIN sessions s "
                            "ON s.id = ce.session_id JOIN users u ON u.id = s.user_id WHERE u.sub = %s",
                            (user.sub,)).fetchone()["zar"]
    usage = user.client.get("/usage").json()
    assert Decimal(usage["totals"]["cost"]["zar"]) == spent


def test_a_teams_leader_remembers_and_recalls_and_its_members_get_only_their_task(user, standin):
    sid = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    _, events = user.turn(sid, message="Remember that I am vegetarian")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    (saved,) = memory_events(events)
    names = [e["event"] for e in events]
    assert saved["text"] == "I am vegetarian" and names.index("MemoryUpdated") == names.index("TeamToolCallCompleted") + 1

    before = len(standin.requests())
    team = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    _, events = user.turn(team, message="Dinner for 4 at 250 g each: what is 4 * 250?")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    leader, *rest = [r["body"] for r in standin.requests()[before:]]
    assert "I am vegetarian" in recall_of(leader) and MEMORY_TOOLS <= tool_names(leader)
    members = [b for b in rest if "calculator" in tool_names(b)]
    assert members and all(recall_of(b) is None and not MEMORY_TOOLS & tool_names(b) for b in members)


def test_the_recall_stays_the_same_within_a_session_so_its_history_is_read_from_the_cache(user, standin):
    user.turn(user.new_session(), message="Remember that I am allergic to peanuts")
    sid = user.new_session()
    long_note = "Here is a long note about my garden, its roses and its old lemon tree. " * 80
    before = len(standin.requests())
    user.turn(sid, message=long_note)
    first = standin.requests()[before]["body"]
    # a memory saved in another session meanwhile does not change this session's recall
    user.turn(user.new_session(), message="Remember that my daughter is called Lerato")
    before = len(standin.requests())
    user.turn(sid, message="And the roses?")
    second = standin.requests()[before]
    assert recall_of(second["body"]) == recall_of(first) and "Lerato" not in recall_of(first)
    assert second["body"]["messages"][:3] == first["messages"][:3]  # recall, its answer, turn 1: byte for byte
    usage = second["response"]["usage"]
    assert usage["cache_read_input_tokens"] > usage["input_tokens"] + usage["cache_creation_input_tokens"]

    # the user deletes a memory: the session's next turn recalls without it (and with what was added since)
    (peanuts,) = [m for m in user.client.get("/me/memories").json()["items"] if "peanuts" in m["text"]]
    assert user.client.delete(f"/me/memories/{peanuts['id']}").status_code == 204
    before = len(standin.requests())
    user.turn(sid, message="And the lemon tree?")
    recall = recall_of(standin.requests()[before]["body"])
    assert "peanuts" not in recall and "Lerato" in recall


def test_the_model_forgets_on_request_and_sessions_under_way_stop_recalling_it(user, standin):
    seed = user.new_session()
    for fact in ("I am allergic to peanuts", "My daughter is called Lerato"):
        user.turn(seed, message=f"Remember that {fact}")
    open_session = user.new_session()
    user.turn(open_session, message="Hello")
    _, events = user.turn(user.new_session(), message="Please forget that I am allergic to peanuts")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    (forgotten,) = memory_events(events)
    assert forgotten["action"] == "forgotten" and forgotten["text"] == "I am allergic to peanuts"
    assert [m["text"] for m in user.client.get("/me/memories").json()["items"]] == ["My daughter is called Lerato"]
    before = len(standin.requests())
    user.turn(open_session, message="What do you remember?")
    recall = recall_of(standin.requests()[before]["body"])
    assert "peanuts" not in recall and "Lerato" in recall


def test_no_tool_call_can_reach_another_users_memory(user, other_user, standin):
    other_user.turn(other_user.new_session(), message="Remember that my secret word is wombat5678")
    (theirs,) = other_user.client.get("/me/memories").json()["items"]
    user.turn(user.new_session(), message="Remember that I live in Durban")
    (mine,) = user.client.get("/me/memories").json()["items"]
    sid = user.new_session()
    standin.script([{"tool_use": {"name": "update_memory", "input": {"memory_id": mine["id"][-8:],
                                                                      "text": "I live in Cape Town"}}},
                    {"text": "Updated."}])
    _, events = user.turn(sid, message="I moved to Cape Town")
    (updated,) = memory_events(events)
    assert updated == {"event": "MemoryUpdated", "action": "updated", "memory_id": mine["id"],
                       "text": "I live in Cape Town", "previous_text": "I live in Durban", "session_id": sid,
                       "run_id": events[-1]["data"]["run_id"]}
    for name, args in (("update_memory", {"memory_id": theirs["id"], "text": "my secret word is gone"}),
                       ("update_memory", {"memory_id": theirs["id"][-8:], "text": "my secret word is gone"}),
                       ("forget_memory", {"memory_id": theirs["id"]})):
        standin.script([{"tool_use": {"name": name, "input": args}}, {"text": "Done."}])
        _, events = user.turn(sid, message="Change the other user's memory")
        assert events[-1]["event"] == "TurnCompleted" and events[-1]["data"]["tool_errors"] == 1, events[-1]
        assert memory_events(events) == []
        result = standin.requests()[-1]["body"]["messages"][-1]["content"][0]
        assert "no such memory" in json.dumps(result)
    assert other_user.client.get("/me/memories").json()["items"] == [theirs]


def test_a_photo_is_never_stored_in_a_memory_only_words(user, standin, db_conn):
    sid = user.new_session()
    _, events = user.turn(sid, message="Remember that this photo shows my red bicycle",
                          images=[{"data": b64(noise_png(64, 48, seed=3))}])
    (saved,) = memory_events(events)
    assert saved["text"] == "this photo shows my red bicycle"
    photo = b64(noise_png(32, 32, seed=4))
    for text in (f"data:image/png;base64,{photo}", photo[:400], "x" * (get_settings().memory_max_chars + 1)):
        standin.script([{"tool_use": {"name": "remember", "input": {"text": text}}}, {"text": "Done."}])
        _, events = user.turn(sid, message="Remember this picture")
        assert events[-1]["event"] == "TurnCompleted" and events[-1]["data"]["tool_errors"] == 1, events[-1]
        assert memory_events(events) == []
    rows = db_conn.execute("SELECT m.text FROM memories m JOIN users u ON u.id = m.user_id WHERE u.sub = %s",
                           (user.sub,)).fetchall()
    assert [r["text"] for r in rows] == ["this photo shows my red bicycle"]


@pytest.fixture()
def five_memories_at_most(settings_env):
    settings_env.setenv("MEMORY_MAX_COUNT", "5")
    get_settings.cache_clear()
    return settings_env


def test_a_consolidation_that_fails_or_does_not_fit_changes_nothing_and_the_turn_completes(
        user, standin, db_conn, five_memories_at_most):
    sid = user.new_session()
    for i in range(5):
        user.turn(sid, message=f"Remember that my locker number {i} is {100 + i}")
    stored = user.client.get("/me/memories").json()["items"]
    assert len(stored) == 5
    failures = [
        {"error": {"status": 400, "type": "invalid_request_error", "message": "refused"}},  # not billed
        {"text": "I would rather not."},  # billed, and no memory in it
        {"text": "\n".join(f"- fact {i}" for i in range(9))},  # billed, and more than MEMORY_MAX_COUNT
    ]
    for failure in failures:
        standin.script([{"tool_use": {"name": "remember", "input": {"text": "my bicycle lock code is 4321"}}},
                        failure, {"text": "Sorry."}])
        _, events = user.turn(sid, message="Remember that my bicycle lock code is 4321")
        assert events[-1]["event"] == "TurnCompleted" and events[-1]["data"]["tool_errors"] == 0, events[-1]
        assert memory_events(events) == []
        assert "Not saved: the memory is full" in json.dumps(standin.requests()[-1]["body"]["messages"][-1])
        assert user.client.get("/me/memories").json()["items"] == stored  # never dropped, nothing half-done
    runs = db_conn.execute("SELECT r.status, r.cost_in_rands FROM runs r JOIN sessions s ON s.id = r.session_id "
                           "WHERE s.id = %s AND r.agent_name = 'memory' ORDER BY r.id", (sid,)).fetchall()
    assert [r["status"] for r in runs] == ["failed", "failed"] and all(r["cost_in_rands"] > 0 for r in runs)
    # the same fact stated twice is one memory, even when the memory is full
    _, events = user.turn(sid, message="Remember that My locker number 0 is 100!")
    assert memory_events(events) == [] and len(user.client.get("/me/memories").json()["items"]) == 5


def test_a_team_member_that_remembers_reads_the_recall_first_in_its_own_input(stack, standin, models_env):
    """Our members (a calculator, a converter) need no facts about the user; a member whose spec
    remembers (here the assistant, in a team of its own) gets the recall and the memory tools."""
    import asyncio

    from agno.models.message import Message
    from uuid6 import uuid7

    from chatcore.catalog.specs import TeamSpec
    from chatcore.memory.facts import render
    from chatcore.turns.memory import recall_messages
    from chatcore.turns.team import TeamConversation

    spec = TeamSpec(name="helpers", description="Helps with meals.", model_id="claude-sonnet-5-5",
                    instructions=("Delegate every task to the assistant.",), members=("assistant", "calculator"),
                    remembers=True)
    recall = recall_messages(render([(uuid7(), "I am vegetarian")], get_settings().memory_max_tokens))

    models_env()  # models of this test's own event loop (the served API's are bound to its loop)

    async def run() -> list[list[dict]]:
        bodies = []
        for recalled in (recall, None):  # memory on, then off
            before = len(standin.requests())
            async for _ in TeamConversation(spec).stream(
                    history=list(recalled or []), message=Message(role="user", content="Plan my dinner"),
                    run_id=str(uuid7()), session_id=str(uuid7()), user_id="someone", recall=recalled):
                pass
            bodies.append([r["body"] for r in standin.requests()[before:]])
        return bodies

    for recalled, bodies in zip((recall, None), asyncio.run(run())):
        leader, member, *_ = bodies
        assert "delegate_task_to_member" in tool_names(leader) and "convert_units" in tool_names(member)
        if recalled:
            assert "I am vegetarian" in recall_of(leader) and "I am vegetarian" in recall_of(member)
            assert MEMORY_TOOLS <= tool_names(leader) and MEMORY_TOOLS <= tool_names(member)
        else:
            assert recall_of(leader) is None and recall_of(member) is None
            assert not MEMORY_TOOLS & (tool_names(leader) | tool_names(member))
