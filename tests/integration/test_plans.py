"""Plans and their rate limits (issue 27): each limit refuses a turn with 429 problem+json naming it,
Retry-After and the RateLimit headers, before anything is stored or any model is called; 20 turns at
once never get past turns-per-minute or concurrent-turns; the plan's budget and a user's override;
what the plan allows; GET /usage shows the plan and what is left; the operator's command. Each test
puts its own user on its own plan (the default plan, with no limits, is what every other test uses)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from decimal import Decimal

import httpx
import pytest

from chatcore.money import budgets, plans
from tests.support.plans import new_plan
from tests.support.users import User


def stored(db_conn, sub: str) -> tuple[int, int]:
    row = db_conn.execute(
        "SELECT (SELECT count(*) FROM runs r JOIN sessions s ON s.id = r.session_id WHERE s.user_id = u.id) AS runs, "
        "(SELECT count(*) FROM chat_events ce JOIN sessions s ON s.id = ce.session_id WHERE s.user_id = u.id) AS rows "
        "FROM users u WHERE u.sub = %s", (sub,)).fetchone()
    return row["runs"], row["rows"]


def rate_limit(header: str) -> dict[str, dict[str, str]]:
    """An IETF RateLimit / RateLimit-Policy field: ``{name: {param: value}}``."""
    items = {}
    for item in header.split(","):
        name, *params = item.strip().split(";")
        items[name.strip('"')] = dict(p.split("=", 1) for p in params)
    return items


def assert_refused(r: httpx.Response, limit: str) -> dict:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "rate-limited" and problem["limit"] == limit and problem["status"] == 429
    assert int(r.headers["Retry-After"]) == problem["retry_after"] >= 1
    assert rate_limit(r.headers["RateLimit"])[limit]["r"] == "0"
    assert limit in rate_limit(r.headers["RateLimit-Policy"])
    return problem


def test_the_sixth_turn_within_a_minute_is_refused_with_nothing_stored_and_no_model_call(user, standin, db_conn):
    plan = new_plan(db_conn, user, turns_per_minute=5)
    sid = user.new_session()
    remaining = []
    for i in range(5):
        r, events = user.turn(sid, message=f"question {i}")
        assert events[-1]["event"] == "TurnCompleted"
        policy = rate_limit(r.headers["RateLimit-Policy"])
        assert policy == {"turns-per-minute": {"q": "5", "w": "60"}}
        state = rate_limit(r.headers["RateLimit"])["turns-per-minute"]
        remaining.append(int(state["r"]))
        assert 1 <= int(state["t"]) <= 60
    assert remaining == [4, 3, 2, 1, 0]
    calls, before = len(standin.requests()), stored(db_conn, user.sub)
    r, events = user.turn(user.new_session(), message="one more")  # any session of the user
    problem = assert_refused(r, "turns-per-minute")
    assert events == [] and problem["plan"] == plan and problem["limit_value"] == 5
    assert 1 <= problem["retry_after"] <= 60
    assert len(standin.requests()) == calls and stored(db_conn, user.sub) == before
    # a minute later (the turns moved back in time) the user goes on
    db_conn.execute("UPDATE runs SET started_at = started_at - interval '61 seconds' WHERE session_id = %s", (sid,))
    _, events = user.turn(sid, message="a minute later")
    assert events[-1]["event"] == "TurnCompleted"


def test_twenty_turns_at_once_never_start_more_than_the_minute_allows(server_url, standin, db_conn):
    user = User(server_url)
    new_plan(db_conn, user, turns_per_minute=5)
    sessions = [user.new_session() for _ in range(20)]
    standin.script([{"text": "an answer", "delay_ms": 50}] * 20)
    statuses = _all_at_once(server_url, user, sessions)
    assert statuses.count(200) == 5 and statuses.count(429) == 15
    assert stored(db_conn, user.sub)[0] == 5


def test_twenty_turns_at_once_never_run_more_than_the_concurrent_limit(server_url, standin, db_conn):
    user = User(server_url)
    new_plan(db_conn, user, concurrent_turns=2)
    sessions = [user.new_session() for _ in range(20)]
    standin.script([{"text": "a slow answer, so that the turns overlap", "delay_ms": 3000}] * 20)
    statuses = _all_at_once(server_url, user, sessions)
    assert 1 <= statuses.count(200) <= 2 and statuses.count(429) == 20 - statuses.count(200)
    runs = db_conn.execute(
        "SELECT r.started_at, r.finished_at FROM runs r JOIN sessions s ON s.id = r.session_id "
        "JOIN users u ON u.id = s.user_id WHERE u.sub = %s", (user.sub,)).fetchall()
    assert len(runs) == statuses.count(200)
    for run in runs:  # never more than two running at any start
        assert sum(1 for o in runs if o["started_at"] <= run["started_at"] < o["finished_at"]) <= 2
    # once they finished, turns start again
    _, events = user.turn(sessions[0], message="and now?")
    assert events[-1]["event"] == "TurnCompleted"


def _all_at_once(server_url: str, user: User, sessions: list[str]) -> list[int]:
    barrier = threading.Barrier(len(sessions))
    statuses: list[int] = []
    refusals: list[httpx.Response] = []

    def send(sid: str) -> None:
        with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as client:
            barrier.wait()
            r = client.post(f"/sessions/{sid}/turns", json={"message": "at once"})
            statuses.append(r.status_code)
            if r.status_code == 429:
                refusals.append(r)

    threads = [threading.Thread(target=send, args=(sid,)) for sid in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in refusals:
        assert r.json()["code"] == "rate-limited" and r.headers["Retry-After"]
    return statuses


def test_a_user_past_the_days_tokens_is_refused_before_the_model_call_and_goes_on_the_next_day(
        user, standin, db_conn):
    new_plan(db_conn, user, tokens_per_day=5000)
    sid = user.new_session()
    standin.script([{"text": "a long answer", "usage": {"input_tokens": 1500, "output_tokens": 4000}}])
    r, events = user.turn(sid, message="tell me everything")
    assert events[-1]["event"] == "TurnCompleted"
    assert rate_limit(r.headers["RateLimit-Policy"])["tokens-per-day"] == {"q": "5000", "w": "86400", "qu": '"tokens"'}
    calls, before = len(standin.requests()), stored(db_conn, user.sub)
    r, events = user.turn(sid, message="and more")
    problem = assert_refused(r, "tokens-per-day")
    assert problem["retry_after"] <= 86_400  # the next UTC day
    assert len(standin.requests()) == calls and stored(db_conn, user.sub) == before
    # the next day: the day's rows are yesterday's
    db_conn.execute("UPDATE chat_events SET created_at = created_at - interval '1 day' WHERE session_id = %s", (sid,))
    db_conn.execute("UPDATE runs SET started_at = started_at - interval '1 day' WHERE session_id = %s", (sid,))
    _, events = user.turn(sid, message="a new day")
    assert events[-1]["event"] == "TurnCompleted"


def test_turns_per_day_count_deleted_sessions_too(user, standin, db_conn):
    new_plan(db_conn, user, turns_per_day=2)
    first = user.new_session()
    for message in ("one", "two"):
        _, events = user.turn(first, message=message)
        assert events[-1]["event"] == "TurnCompleted"
    assert user.client.delete(f"/sessions/{first}").status_code == 204
    r, _ = user.turn(user.new_session(), message="three")
    assert_refused(r, "turns-per-day")


def test_a_plans_budget_applies_and_a_users_own_budget_overrides_it(user, standin, db_conn):
    new_plan(db_conn, user, budget_zar="0")
    sid = user.new_session()
    r, events = user.turn(sid, message="hello")
    assert r.status_code == 402 and r.json()["monthly_budget_zar"] == "0.00" and events == []
    assert standin.requests() == []
    budgets.set_budget(db_conn, user.sub, Decimal("100000.00"))
    _, events = user.turn(sid, message="hello")
    assert events[-1]["event"] == "TurnCompleted"
    assert user.client.get("/usage").json()["budget"]["monthly_budget_zar"] == "100000.00"


def test_an_agent_or_feature_the_plan_leaves_out_is_403(user, standin, db_conn):
    name = f"t-{uuid.uuid4().hex[:12]}"
    plans.define(db_conn, name, agents="researcher")
    sid = user.new_session()
    plans.assign(db_conn, user.sub, name)
    r, events = user.turn(sid, message="hello")
    assert r.status_code == 403 and r.json()["code"] == "not-in-plan" and r.json()["plan"] == name
    assert events == [] and standin.requests() == []
    plans.define(db_conn, name, thinking=False)
    _, events = user.turn(sid, message="hello")
    assert events[-1]["event"] == "TurnCompleted"
    r, _ = user.turn(user.new_session("thinker"), message="think")
    assert r.status_code == 403 and "thinking" in r.json()["detail"]



def test_a_team_is_in_a_plan_only_with_what_its_members_do(user, standin, db_conn):
    """newsdesk's leader thinks; its researcher member searches the web: a plan without web search
    refuses the team's turns as it refuses the researcher's own."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    plans.define(db_conn, name, web_search=False)
    r = user.client.post("/sessions", json={"team": "newsdesk"})
    assert r.status_code == 201, r.text
    plans.assign(db_conn, user.sub, name)
    r, events = user.turn(r.json()["id"], message="what happened today?")
    assert r.status_code == 403 and "web search" in r.json()["detail"] and "newsdesk" in r.json()["detail"]
    assert events == [] and standin.requests() == []


def test_usage_shows_the_plan_and_what_is_left(user, other_user, standin, db_conn):
    plan = new_plan(db_conn, user, turns_per_minute=5, turns_per_day=100, concurrent_turns=2, budget_zar="50")
    _, events = user.turn(user.new_session(), message="hello")
    assert events[-1]["event"] == "TurnCompleted"
    shown = user.client.get("/usage").json()["plan"]
    assert shown["name"] == plan and shown["monthly_budget_zar"] == "50.00" and shown["thinking_allowed"]
    limits = {limit["name"]: limit for limit in shown["limits"]}
    assert set(limits) == {"turns-per-minute", "turns-per-day", "concurrent-turns"}
    assert (limits["turns-per-minute"]["used"], limits["turns-per-minute"]["remaining"]) == (1, 4)
    assert (limits["turns-per-day"]["used"], limits["turns-per-day"]["remaining"]) == (1, 99)
    assert limits["concurrent-turns"]["used"] == 0 and limits["concurrent-turns"]["window_seconds"] is None
    # another user is on the default plan: no limits, and none of this user's counts
    other_user.new_session()
    assert other_user.client.get("/usage").json()["plan"] == {
        "name": "standard", "monthly_budget_zar": None, "agents": None, "models": None,
        "thinking_allowed": True, "web_search_allowed": True, "limits": []}


def test_the_plans_command(user, db_conn, stack, capsys):
    url = stack.env["DATABASE_URL"]
    name = f"t-{uuid.uuid4().hex[:12]}"
    user.new_session()
    assert plans.main(["--database-url", url, "define", name, "--turns-per-minute", "3", "--models",
                       "claude-sonnet-4-5", "--no-web-search"]) == 0
    defined = json.loads(capsys.readouterr().out)
    assert defined["turns_per_minute"] == 3 and defined["models"] == ["claude-sonnet-4-5"]
    assert defined["web_search_allowed"] is False and defined["is_default"] is False
    assert plans.main(["--database-url", url, "assign", "--sub", user.sub, "--plan", name]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["plan"]["name"] == name and shown["plan"]["limits"][0]["remaining"] == 3
    assert plans.main(["--database-url", url, "assign", "--sub", user.sub, "--plan", "no-such-plan"]) == 1
    assert "no plan named" in capsys.readouterr().err
    assert plans.main(["--database-url", url, "define", name, "--turns-per-minute", "0"]) == 1
    assert plans.main(["--database-url", url, "assign", "--sub", user.sub, "--default"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["name"] == "standard"
    assert re.search(rf'"name": "{name}"', (plans.main(["--database-url", url, "list"]), capsys.readouterr().out)[1])


@pytest.mark.parametrize("header", ["RateLimit", "RateLimit-Policy"])
def test_a_turn_on_a_plan_without_limits_sends_no_rate_limit_headers(user, standin, header):
    r, events = user.turn(user.new_session(), message="hello")
    assert events[-1]["event"] == "TurnCompleted" and header not in r.headers


def half_spent(user, standin, db_conn) -> tuple[str, Decimal, dict]:
    """A session whose first turn, a call billed for a million input tokens (the unit of the test's
    spend; far under the budget: no warning), spent half of the budget then set; the call's script."""
    sid = user.new_session()
    budgets.set_budget(db_conn, user.sub, Decimal("1000000.00"))
    big = {"text": "an answer", "usage": {"input_tokens": 1_000_000, "output_tokens": 100}}
    standin.script([big])
    _, events = user.turn(sid, message="the first")
    assert not [e for e in events if e["event"] == "BudgetWarning"]
    unit = Decimal(events[-1]["data"]["cost"]["zar"])
    budgets.set_budget(db_conn, user.sub, (unit * 2).quantize(Decimal("0.01")))
    return sid, unit, big


def test_80_and_100_percent_of_the_budget_each_warn_once_in_the_stream_and_stay_readable(user, standin, db_conn):
    sid, unit, big = half_spent(user, standin, db_conn)
    standin.script([{**big, "usage": {"input_tokens": 700_000, "output_tokens": 100}}])
    _, events = user.turn(sid, message="the second")  # 85 %
    warnings = [e for e in events if e["event"] == "BudgetWarning"]
    assert [w["data"]["percent"] for w in warnings] == [80]
    assert events[-2]["event"] == "BudgetWarning" and events[-1]["event"] == "TurnCompleted"
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    warning = warnings[0]["data"]
    assert warning["monthly_budget_zar"] == str((unit * 2).quantize(Decimal("0.01")))
    assert Decimal(warning["spent_zar"]) >= Decimal(warning["monthly_budget_zar"]) * Decimal("0.8")
    assert warning["run_id"] == events[-1]["data"]["run_id"] and warning["session_id"] == sid
    standin.script([big])
    _, events = user.turn(sid, message="the third")  # past 100 %: the 80 % is not told again
    assert [e["data"]["percent"] for e in events if e["event"] == "BudgetWarning"] == [100]
    shown = user.client.get("/usage").json()["budget"]["warnings"]
    assert [w["percent"] for w in shown] == [80, 100] and Decimal(shown[1]["spent_zar"]) >= unit * 2
    # the stream replayed from what is stored has them too
    replay = user.client.get(f"/sessions/{sid}/turns/{events[-1]['data']['run_id']}/events")
    assert "event: BudgetWarning" in replay.text


def test_a_script_looping_on_a_route_is_refused_past_the_request_limit(user, other_user, settings_env):
    settings_env.setenv("API_REQUESTS_PER_MINUTE", "7")
    statuses = [user.client.get("/sessions").status_code for _ in range(10)]
    assert statuses == [200] * 7 + [429] * 3
    r = user.client.get("/usage")
    assert r.status_code == 429 and r.json()["limit"] == "requests-per-minute" and r.json()["limit_value"] == 7
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert rate_limit(r.headers["RateLimit"]) == {"requests-per-minute": {"r": "0", "t": r.headers["Retry-After"]}}
    assert other_user.client.get("/sessions").status_code == 200  # per user
    from chatcore.config import get_settings

    settings_env.setenv("API_REQUESTS_PER_MINUTE", "0")  # no limit
    get_settings.cache_clear()
    assert user.client.get("/sessions").status_code == 200



def test_every_turn_answer_carries_the_rate_limit_headers_a_retry_a_409_and_a_402_too(user, standin, db_conn):
    from uuid6 import uuid7

    from local.sample_images import noise_png
    from tests.support.uploads import uploaded

    new_plan(db_conn, user, turns_per_minute=5)
    sid = user.new_session()

    def left(r: httpx.Response) -> int:
        assert rate_limit(r.headers["RateLimit-Policy"]) == {"turns-per-minute": {"q": "5", "w": "60"}}, r.headers
        return int(rate_limit(r.headers["RateLimit"])["turns-per-minute"]["r"])

    upload = uploaded(user, noise_png(64, 48, seed=5))
    body = {"message": "one", "client_turn_id": "c-1", "images": [{"upload_id": upload["upload_id"]}]}
    r, events = user.turn(sid, **body)
    assert events[-1]["event"] == "TurnCompleted" and left(r) == 4
    # the retried client_turn_id (its upload already used): the stored turn is followed, no turn counted
    r, events = user.turn(sid, **body)
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted" and left(r) == 4
    r, events = user.turn(sid, message="two", client_turn_id="c-2")
    assert left(r) == 3
    r, events = user.turn(sid, message="two", client_turn_id="c-2")  # retried, no upload
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted" and left(r) == 3
    # 409: a turn runs in the session (it counts: it started within the minute)
    running = uuid7()
    db_conn.execute("INSERT INTO runs (id, session_id, status) VALUES (%s, %s, 'running')", (running, sid))
    r, _ = user.turn(sid, message="three")
    assert r.status_code == 409 and left(r) == 2
    db_conn.execute("DELETE FROM runs WHERE id = %s", (running,))
    # 402: the budget cannot cover the turn
    budgets.set_budget(db_conn, user.sub, Decimal("0.0000001"))
    r, _ = user.turn(sid, message="four")
    assert r.status_code == 402 and r.json()["code"] == "budget-exceeded" and left(r) == 3


def test_turns_per_minute_count_deleted_sessions_too(user, standin, db_conn):
    # a script that deletes each session after its turn does not escape the minute's limit
    new_plan(db_conn, user, turns_per_minute=2)
    for message in ("one", "two"):
        sid = user.new_session()
        _, events = user.turn(sid, message=message)
        assert events[-1]["event"] == "TurnCompleted"
        assert user.client.delete(f"/sessions/{sid}").status_code == 204
    r, _ = user.turn(user.new_session(), message="three")
    problem = assert_refused(r, "turns-per-minute")
    assert 1 <= problem["retry_after"] <= 60
    # a minute later (the kept starts moved back in time) the user goes on, and the next deletion
    # drops the starts older than a minute
    db_conn.execute("UPDATE users SET deleted_turn_starts = ARRAY(SELECT x - interval '61 seconds' "
                    "FROM unnest(deleted_turn_starts) x) WHERE sub = %s", (user.sub,))
    sid = user.new_session()
    _, events = user.turn(sid, message="a minute later")
    assert events[-1]["event"] == "TurnCompleted"
    assert user.client.delete(f"/sessions/{sid}").status_code == 204
    starts = db_conn.execute("SELECT deleted_turn_starts AS s FROM users WHERE sub = %s", (user.sub,)).fetchone()["s"]
    assert len(starts) == 1


def test_an_approvals_continuation_warns_when_it_crosses_80_and_100_percent(user, standin, db_conn):
    from chatcore.wire import sse

    sid = user.new_session()
    budgets.set_budget(db_conn, user.sub, Decimal("1000000.00"))
    standin.script([{"text": "an answer", "usage": {"input_tokens": 1_000_000, "output_tokens": 100}}])
    _, events = user.turn(sid, message="the first")
    unit = Decimal(events[-1]["data"]["cost"]["zar"])
    budget = (unit * 2).quantize(Decimal("0.01"))
    budgets.set_budget(db_conn, user.sub, budget)  # half of it is spent
    _, events = user.turn(sid, message="Remind me to call mom at 18:00")  # paused on its call: a cheap stretch
    paused = events[-1]["data"]
    assert events[-1]["event"] == "TurnPaused" and not [e for e in events if e["event"] == "BudgetWarning"]
    # the continuation's call is billed 1.2 million input tokens: past 80 % and 100 % of the budget
    standin.script([{"text": "done", "usage": {"input_tokens": 1_200_000, "output_tokens": 100}}])
    r = user.client.post(f"/sessions/{sid}/turns/{paused['run_id']}/approvals", json={"decisions": [
        {"tool_call_id": paused["pending"][0]["tool_call_id"], "approved": True}]})
    assert r.status_code == 200, r.text
    more = sse.parse(r.text)
    warnings = [e["data"] for e in more if e["event"] == "BudgetWarning"]
    assert [w["percent"] for w in warnings] == [80, 100], [e["event"] for e in more]
    assert more[-1]["event"] == "TurnCompleted" and all(w["run_id"] == paused["run_id"] for w in warnings)
    assert all(w["monthly_budget_zar"] == str(budget) for w in warnings)
    shown = user.client.get("/usage").json()["budget"]["warnings"]
    assert [w["percent"] for w in shown] == [80, 100]
    # the stretch before the pause is not counted twice: the warning's spend is what is stored
    stored = db_conn.execute("SELECT sum(cost_in_rands) AS s FROM runs r JOIN sessions s ON s.id = r.session_id "
                             "WHERE s.id = %s AND r.parent_run_id IS NULL", (sid,)).fetchone()["s"]
    assert Decimal(warnings[-1]["spent_zar"]) == stored.quantize(Decimal("0.01"))


def test_a_budget_warning_of_a_turn_that_could_not_be_stored_is_released_and_told_by_the_next(user, standin, db_conn):
    sid, unit, big = half_spent(user, standin, db_conn)
    # the turn's final store fails (the database refuses its model's rows), after its warning was claimed
    db_conn.execute("CREATE FUNCTION refuse_answers() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'no answers today'; END $$")
    db_conn.execute(f"CREATE TRIGGER refuse_answers BEFORE INSERT ON chat_events FOR EACH ROW "
                    f"WHEN (NEW.role = 'assistant' AND NEW.session_id = '{sid}') EXECUTE FUNCTION refuse_answers()")
    standin.script([{**big, "usage": {"input_tokens": 700_000, "output_tokens": 100}}])
    _, events = user.turn(sid, message="the second")  # 85 %, had it been stored
    assert events[-1]["event"] == "TurnFailed" and events[-1]["data"]["error"]["code"] == "storage-error"
    assert not [e for e in events if e["event"] == "BudgetWarning"]
    assert db_conn.execute("SELECT count(*) AS n FROM budget_warnings w JOIN users u ON u.id = w.user_id "
                           "WHERE u.sub = %s", (user.sub,)).fetchone()["n"] == 0
    assert user.client.get("/usage").json()["budget"]["warnings"] == []
    db_conn.execute("DROP TRIGGER refuse_answers ON chat_events")
    standin.script([{**big, "usage": {"input_tokens": 700_000, "output_tokens": 100}}])
    _, events = user.turn(sid, message="the third")  # the spend did not grow: this one crosses 80 %
    assert [e["data"]["percent"] for e in events if e["event"] == "BudgetWarning"] == [80]
    assert [w["percent"] for w in user.client.get("/usage").json()["budget"]["warnings"]] == [80]


def test_an_abandoned_turn_releases_the_budget_warnings_it_never_stored(user, standin, db_conn):
    from uuid6 import uuid7

    sid = user.new_session()
    _, events = user.turn(sid, message="the first")
    user_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    # a turn whose process ended after it claimed its 80 % warning, before it stored anything
    gone = uuid7()
    db_conn.execute("INSERT INTO runs (id, session_id, status, started_at) VALUES (%s, %s, 'running', now() - "
                    "interval '1 hour')", (gone, sid))
    db_conn.execute("INSERT INTO budget_warnings (user_id, month, percent, monthly_budget_zar, spent_zar, run_id) "
                    "VALUES (%s, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 80, 10, 8.5, %s)", (user_id, gone))
    _, events = user.turn(sid, message="the next")  # finds the stale turn and abandons it
    assert events[-1]["event"] == "TurnCompleted"
    assert db_conn.execute("SELECT count(*) AS n FROM budget_warnings WHERE user_id = %s", (user_id,)).fetchone()["n"] == 0
    assert db_conn.execute("SELECT error_code FROM runs WHERE id = %s", (gone,)).fetchone()["error_code"] == "abandoned"
