"""The mobile API: catalog, sessions (list, read, rename, delete), messages with presigned images,
usage; a user reaches only their own data."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import boto3
import httpx

from tests.support.images import LARGE_PNG, LARGE_STORED, SMALL_PNG, SMALL_STORED, b64


def test_agents_and_teams(user):
    agents = user.client.get("/agents").json()
    names = {a["name"]: a for a in agents}
    assert {"assistant", "calculator", "converter"} <= set(names)
    assert names["assistant"]["tools"] == ["calculator", "convert_units", "set_reminder"]
    assert names["assistant"]["model_provider"] == "anthropic"
    # what each agent does beyond text: thinking, web search, tools that wait for the user's approval
    assert names["assistant"]["approval_tools"] == ["set_reminder"]
    assert not names["assistant"]["thinking"] and not names["assistant"]["web_search"]
    assert names["thinker"]["thinking"] and not names["thinker"]["web_search"]
    assert names["researcher"]["web_search"] and names["researcher"]["approval_tools"] == []
    assert not names["calculator"]["thinking"] and names["calculator"]["approval_tools"] == []
    teams = user.client.get("/teams").json()
    assert [t for t in teams if t["name"] == "planner"][0]["members"] == ["calculator", "converter", "organiser"]
    assert {t["name"]: t["thinking"] for t in teams} == {"planner": False, "newsdesk": True}


def test_sessions_are_listed_newest_activity_first_and_paged(user, other_user, standin):
    ids = [user.new_session() for _ in range(5)]
    other_user.new_session()
    # activity on the oldest session moves it to the front
    user.turn(ids[0], message="hello")
    seen, cursor, pages = [], None, 0
    while True:
        r = user.client.get("/sessions", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        page = r.json()
        seen += [s["id"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [ids[0], *reversed(ids[1:])]
    bad = user.client.get("/sessions", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-input"


def test_session_detail_and_rename(user, standin):
    sid = user.new_session()
    _, events = user.turn(sid, message="What is 2 + 2?")
    detail = user.client.get(f"/sessions/{sid}").json()
    assert detail["turns"] == 1 and detail["turn_running"] is False and detail["agent"] == "assistant"
    assert detail["cost"] == events[-1]["data"]["cost"]
    r = user.client.patch(f"/sessions/{sid}", json={"title": "Sums"})
    assert r.status_code == 200 and r.json()["title"] == "Sums"
    assert user.client.get(f"/sessions/{sid}").json()["title"] == "Sums"
    assert user.client.patch(f"/sessions/{sid}", json={"title": ""}).status_code == 422
    assert user.client.patch(f"/sessions/{sid}", json={"title": "x", "extra": 1}).status_code == 422


def test_a_second_user_cannot_touch_the_first_users_session(user, other_user, standin, db_conn):
    sid = user.new_session()
    user.turn(sid, message="mine")
    before = db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id=%s", (sid,)).fetchone()["n"]
    n_requests = len(standin.requests())
    calls = [
        other_user.client.get(f"/sessions/{sid}"),
        other_user.client.get(f"/sessions/{sid}/messages"),
        other_user.client.patch(f"/sessions/{sid}", json={"title": "stolen"}),
        other_user.client.delete(f"/sessions/{sid}"),
        other_user.client.post(f"/sessions/{sid}/turns", json={"message": "continue it"}),
    ]
    for r in calls:
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "not-found"
    assert sid not in [s["id"] for s in other_user.client.get("/sessions").json()["items"]]
    assert len(standin.requests()) == n_requests
    assert db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id=%s", (sid,)).fetchone()["n"] == before
    assert user.client.get(f"/sessions/{sid}").json()["title"] is None


def test_messages_render_a_chat_with_presigned_images(user, standin):
    sid = user.new_session()
    user.turn(sid, message="big photo", images=[{"data": b64(LARGE_PNG)}])
    user.turn(sid, message="small photo and 3 * 4", images=[{"data": b64(SMALL_PNG)}])
    r = user.client.get(f"/sessions/{sid}/messages")
    assert r.status_code == 200
    body = r.text
    assert b64(LARGE_PNG)[:100] not in body and b64(SMALL_PNG) not in body  # never base64
    items = r.json()["items"]
    assert [m["role"] for m in items] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert items[0]["text"] == "big photo" and items[0]["agent_name"] is None
    assert items[1]["agent_name"] == "assistant" and items[1]["usage"]["input_tokens"] > 0
    assert Decimal(items[1]["cost"]["zar"]) > 0
    assert items[3]["tool_calls"][0]["name"] == "calculator"
    assert json.loads(items[3]["tool_calls"][0]["arguments"]) == {"expression": "3 * 4"}
    assert items[4]["tool_result"] == {"call_id": items[3]["tool_calls"][0]["id"], "name": "calculator", "error": False}
    # the app gets the normalised photos back (a JPEG for the noisy photo, the tiny PNG as a PNG)
    for message, stored, mime in ((items[0], LARGE_STORED, "image/jpeg"), (items[2], SMALL_STORED, "image/png")):
        image = message["images"][0]
        query = parse_qs(urlparse(image["url"]).query)
        assert query["X-Amz-Expires"] == ["900"] and "X-Amz-Signature" in query and image["expires_in"] == 900
        assert httpx.get(image["url"]).content == stored
        assert image["mime_type"] == mime and image["size"] == len(stored)
    # paging, both directions
    first = user.client.get(f"/sessions/{sid}/messages", params={"limit": 4}).json()
    rest = user.client.get(f"/sessions/{sid}/messages", params={"limit": 4, "cursor": first["next_cursor"]}).json()
    assert [m["id"] for m in first["items"] + rest["items"]] == [m["id"] for m in items] and rest["next_cursor"] is None
    newest = user.client.get(f"/sessions/{sid}/messages", params={"order": "desc", "limit": 2}).json()
    assert [m["id"] for m in newest["items"]] == [items[-1]["id"], items[-2]["id"]]


def test_team_messages_name_the_member_and_can_be_filtered(user, standin):
    sid = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    user.turn(sid, message="What is 6 * 7?")
    items = user.client.get(f"/sessions/{sid}/messages").json()["items"]
    members = [m for m in items if m["member"]]
    assert members and {m["agent_name"] for m in members} == {"calculator"}
    assert all(m["parent_run_id"] == items[0]["run_id"] for m in members)
    leader_only = user.client.get(f"/sessions/{sid}/messages", params={"members": "false"}).json()["items"]
    assert [m["id"] for m in leader_only] == [m["id"] for m in items if not m["member"]]


def test_delete_removes_rows_and_s3_objects(user, other_user, standin, db_conn, stack):
    sid = user.new_session()
    user.turn(sid, message="photo", images=[{"data": b64(LARGE_PNG)}])
    user.client.get(f"/sessions/{sid}/messages")
    keep = user.new_session()
    user.turn(keep, message="keep me", images=[{"data": b64(LARGE_PNG)}])
    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    bucket = stack.env["MEDIA_BUCKET"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("KeyCount") == 1
    url = user.client.get(f"/sessions/{sid}/messages").json()["items"][0]["images"][0]["url"]
    r = user.client.delete(f"/sessions/{sid}")
    assert r.status_code == 204
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("KeyCount") == 0
    assert httpx.get(url).status_code == 404  # even an issued URL no longer reaches the photo
    for table in ("chat_events", "runs", "sessions"):
        col = "id" if table == "sessions" else "session_id"
        assert db_conn.execute(f"SELECT count(*) AS n FROM {table} WHERE {col} = %s", (sid,)).fetchone()["n"] == 0
    assert user.client.get(f"/sessions/{sid}").status_code == 404
    assert user.client.delete(f"/sessions/{sid}").status_code == 404
    # the other session, and its object, are untouched
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{keep}-").get("KeyCount") == 1
    assert len(user.client.get(f"/sessions/{keep}/messages").json()["items"]) == 2


def test_delete_while_a_turn_runs_is_409(user, standin, server_url):
    import threading
    import time

    sid = user.new_session()
    standin.script([{"text": "slow " * 30, "delay_ms": 150}])
    t = threading.Thread(target=lambda: user.turn(sid, message="slow"))
    t.start()
    time.sleep(0.6)
    with httpx.Client(base_url=server_url, headers=user.headers) as c:
        r = c.delete(f"/sessions/{sid}")
    t.join()
    assert r.status_code == 409 and r.json()["code"] == "turn-in-progress"
    assert user.client.delete(f"/sessions/{sid}").status_code == 204


def test_usage_by_day_and_agent_equals_the_stored_rows(user, other_user, standin, db_conn):
    s1 = user.new_session()
    s2 = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    user.turn(s1, message="What is 1 + 1?")
    user.turn(s2, message="What is 2 * 8?")
    other_user.turn(other_user.new_session(), message="not yours")
    standin.script([{"error": {"status": 400, "type": "invalid_request_error", "message": "bad"}}])
    user.turn(s1, message="fails")
    u = user.client.get("/usage").json()
    rows = db_conn.execute(
        "SELECT ce.* FROM chat_events ce JOIN sessions s ON s.id = ce.session_id JOIN users u ON u.id = s.user_id "
        "WHERE u.sub = %s", (user.sub,)).fetchall()
    assert u["totals"]["input_tokens"] == sum(r["input_tokens"] for r in rows) > 0
    assert Decimal(u["totals"]["cost"]["zar"]) == sum(r["cost_in_rands"] for r in rows)
    assert u["totals"]["turns"] == 3 and u["totals"]["failed_turns"] == 1
    assert len(u["by_day"]) == 1 and u["by_day"][0]["cost"] == u["totals"]["cost"]
    by_agent = {(a["kind"], a["name"]): a for a in u["by_agent"]}
    assert set(by_agent) == {("agent", "assistant"), ("team", "planner")}
    team_rows = [r for r in rows if str(r["session_id"]) == s2]
    assert Decimal(by_agent[("team", "planner")]["cost"]["usd"]) == sum(r["cost_usd"] for r in team_rows)
    assert u["from"] <= u["by_day"][0]["day"] <= u["to"]
    # empty and invalid ranges
    assert user.client.get("/usage", params={"from": "2020-01-01", "to": "2020-01-31"}).json()["by_day"] == []
    for params in ({"from": "2026-02-01", "to": "2026-01-01"}, {"from": "2020-01-01", "to": "2026-01-01"},
                   {"from": "yesterday"}):
        r = user.client.get("/usage", params=params)
        assert r.status_code == 422 and r.json()["code"] == "invalid-input"


def test_usage_shows_spend_against_budget(user, standin, db_conn):
    from chatcore.money.budgets import budget_status

    assert user.client.get("/usage").json()["budget"] is None
    sid = user.new_session()
    user.turn(sid, message="What is 5 * 5?")
    db_conn.execute("UPDATE users SET monthly_budget_zar = 50 WHERE sub = %s", (user.sub,))
    budget = user.client.get("/usage").json()["budget"]
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    assert budget == budget_status(db_conn, uid)
    assert budget["monthly_budget_zar"] == "50.00" and Decimal(budget["spent_zar"]) > 0
    assert Decimal(budget["remaining_zar"]) == Decimal("50.00") - Decimal(budget["spent_zar"])


def test_deleting_a_session_keeps_what_it_cost(user, standin, db_conn):
    """Content goes, money stays: usage, budgets and the daily rollup still count a deleted session."""
    from chatcore.money.budgets import month_spend
    from chatcore.money.rollup import rollup

    sid = user.new_session()
    user.turn(sid, message="What is 9 * 9?")
    before = user.client.get("/usage").json()
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    spent_before = month_spend(db_conn, uid)
    assert Decimal(before["totals"]["cost"]["zar"]) == spent_before > 0
    assert user.client.delete(f"/sessions/{sid}").status_code == 204
    after = user.client.get("/usage").json()
    assert after["totals"] == before["totals"] and after["by_day"] == before["by_day"]
    assert after["by_agent"] == before["by_agent"]
    assert month_spend(db_conn, uid) == spent_before
    kept = db_conn.execute("SELECT * FROM deleted_session_usage WHERE session_id = %s", (sid,)).fetchall()
    assert sum(k["cost_in_rands"] for k in kept) == spent_before and sum(k["turns"] for k in kept) == 1
    assert "message_parts" not in kept[0]
    day = kept[0]["day"]
    rollup(db_conn, day, day)
    rolled = db_conn.execute("SELECT sum(cost_in_rands) AS zar FROM daily_costs WHERE user_id = %s", (uid,)).fetchone()
    assert rolled["zar"] == spent_before
