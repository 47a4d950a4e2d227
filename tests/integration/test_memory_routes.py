"""The user's control of what the assistant remembers, through the served API: GET /me/memories
(paged, newest first), PATCH and DELETE /me/memories/{id}, DELETE /me/memories, GET and PUT
/me/settings. Someone else's memory is 404 and stays as it was; an edit past the limits is 422;
memories outlive the session that wrote them (deleted by the user or by the retention period)."""

from __future__ import annotations

import httpx

from chatcore.account import retention
from chatcore.config import get_settings

PROBLEM = "application/problem+json"


def remembered(user, *facts: str) -> list[dict]:
    """The user tells the assistant ``facts`` in a new session; the memories listed, newest first."""
    sid = user.new_session()
    for fact in facts:
        _, events = user.turn(sid, message=f"Remember that {fact}")
        assert [e["data"]["action"] for e in events if e["event"] == "MemoryUpdated"] == ["saved"], events[-1]
    return user.client.get("/me/memories", params={"limit": 200}).json()["items"]


def problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM), (r.status_code, r.text)
    assert r.json()["code"] == code, r.text
    return r.json()


def test_memories_are_listed_newest_first_a_page_at_a_time(user, standin):
    facts = [f"my locker number {i} is {100 + i}" for i in range(5)]
    everything = remembered(user, *facts)
    assert [m["text"] for m in everything] == facts[::-1]
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = user.client.get("/me/memories", params=params).json()
        pages.append([m["text"] for m in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [facts[4:2:-1], facts[2:0:-1], facts[:1]]
    problem(user.client.get("/me/memories", params={"cursor": "bm90LW91cnM"}), 422, "invalid-input")
    problem(user.client.get("/me/memories", params={"limit": 0}), 422, "invalid-input")
    assert user.client.get("/me/memories").json() == {"items": everything, "next_cursor": None}


def test_someone_elses_memory_is_not_found_and_stays_as_it_was(user, other_user, standin):
    (theirs,) = remembered(other_user, "my secret word is wombat5678")
    (mine,) = remembered(user, "my secret word is quokka1234")
    problem(user.client.patch(f"/me/memories/{theirs['id']}", json={"text": "changed"}), 404, "not-found")
    problem(user.client.delete(f"/me/memories/{theirs['id']}"), 404, "not-found")
    assert user.client.delete("/me/memories").status_code == 204  # forgets the caller's only
    assert user.client.get("/me/memories").json()["items"] == []
    assert other_user.client.get("/me/memories").json()["items"] == [theirs]
    problem(user.client.delete(f"/me/memories/{mine['id']}"), 404, "not-found")  # already forgotten
    problem(user.client.patch("/me/memories/not-a-uuid", json={"text": "x"}), 422, "invalid-input")


def test_an_edit_changes_the_text_within_the_limits(user, standin, settings_env):
    durban, peanuts = remembered(user, "I am allergic to peanuts", "I live in Durban")
    r = user.client.patch(f"/me/memories/{durban['id']}", json={"text": "I live in\nCape Town"})
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["text"] == "I live in Cape Town" and edited["id"] == durban["id"]  # one line
    assert edited["created_at"] == durban["created_at"] and edited["updated_at"] > durban["updated_at"]
    assert edited["session_id"] == durban["session_id"] and edited["run_id"] == durban["run_id"]
    too_long = "x" * (get_settings().memory_max_chars + 1)
    for text in (too_long, "", "   \n ", "bad\u0000text"):
        body = problem(user.client.patch(f"/me/memories/{durban['id']}", json={"text": text}), 422, "invalid-input")
        assert body.get("field") == "text" or any(e["loc"][-1] == "text" for e in body.get("errors", [])), body
    problem(user.client.patch(f"/me/memories/{durban['id']}", json={"text": "I am ALLERGIC to peanuts."}), 409,
            "memory-exists")
    problem(user.client.patch(f"/me/memories/{durban['id']}", json={"text": "ok", "extra": 1}), 422, "invalid-input")
    # past MEMORY_MAX_TOKENS (200 tokens: about 800 characters recalled): refused, not stored
    allergies = "I am allergic to peanuts, " + "and to the pollen of many grasses, " * 8
    assert user.client.patch(f"/me/memories/{peanuts['id']}", json={"text": allergies}).status_code == 200
    settings_env.setenv("MEMORY_MAX_TOKENS", "200")
    get_settings.cache_clear()
    long_text = "I live in Cape Town, " + "near the sea and the mountain, " * 14
    body = problem(user.client.patch(f"/me/memories/{durban['id']}", json={"text": long_text}), 422, "invalid-input")
    assert "MEMORY_MAX_TOKENS" in body["detail"]
    listed = user.client.get("/me/memories").json()["items"]
    assert [m["text"] for m in listed] == ["I live in Cape Town", allergies.strip()]


def test_the_memory_switch_is_on_by_default_and_forgetting_everything_keeps_it(user, standin):
    assert user.client.get("/me/settings").json() == {"memory": True, "push_preview": False}  # a caller never seen
    for bad in ({}, {"memory": "sometimes"}, {"memory": True, "colour": "blue"}, None):
        problem(user.client.put("/me/settings", json=bad), 422, "invalid-input")
    assert user.client.put("/me/settings", json={"memory": False}).json() == {"memory": False, "push_preview": False}
    assert user.client.put("/me/settings", json={"memory": False}).json() == {"memory": False, "push_preview": False}
    assert user.client.put("/me/settings", json={"memory": True}).json() == {"memory": True, "push_preview": False}
    remembered(user, "I am vegetarian", "I live in Durban")
    assert user.client.delete("/me/memories").status_code == 204
    assert user.client.delete("/me/memories").status_code == 204  # nothing left: the same answer
    assert user.client.get("/me/memories").json() == {"items": [], "next_cursor": None}
    assert user.client.get("/me/settings").json() == {"memory": True, "push_preview": False}


def test_the_routes_need_an_identity(server_url):
    for method, path in (("GET", "/me/memories"), ("DELETE", "/me/memories"), ("GET", "/me/settings"),
                         ("DELETE", "/me/memories/01968f4e-7a3b-7c2d-9e1f-5a6b7c8d9e0f")):
        problem(httpx.request(method, server_url + path), 401, "unauthorized")


def test_a_memory_outlives_the_session_that_wrote_it(user, standin, db_conn):
    (memory,) = remembered(user, "I am allergic to peanuts")
    assert user.client.delete(f"/sessions/{memory['session_id']}").status_code == 204
    (kept,) = user.client.get("/me/memories").json()["items"]
    assert kept == {**memory, "session_id": None, "run_id": None}


def test_the_retention_period_deletes_sessions_and_keeps_their_memories(user, standin, db_conn):
    (memory,) = remembered(user, "My daughter is called Lerato")
    db_conn.execute("UPDATE sessions SET updated_at = now() - interval '40 days' WHERE id = %s",
                    (memory["session_id"],))
    assert retention.apply_retention(30)["sessions_deleted"] >= 1
    assert user.client.get(f"/sessions/{memory['session_id']}").status_code == 404
    (kept,) = user.client.get("/me/memories").json()["items"]
    assert kept == {**memory, "session_id": None, "run_id": None}
    before = len(standin.requests())
    _, events = user.turn(user.new_session(), message="Who is my daughter?")
    assert "Lerato" in str(standin.requests()[before]["body"]["messages"]) and events[-1]["event"] == "TurnCompleted"
