"""The price before you send (issue 27 item 4): POST /sessions/{id}/turns/estimate calls no model and
stores nothing (no row, no S3 object, no upload used), is the caller's alone, refuses a bad body as a
turn does, reports the budget left and the plan's limit that would refuse the turn; and its ``likely``
lies within ±25 % of each turn's real cost (the stand-in bills like the API, prompt cache included),
the real cost within [low, high]."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from chatcore.money import budgets
from chatcore.wire.schemas import TurnEstimate
from local.sample_images import b64, noise_png, sunset_png
from tests.support.faults import postgres_down  # noqa: F401 - a fixture
from tests.support.plans import new_plan
from tests.support.uploads import upload_row, uploaded


def estimate(user, sid: str, **body):
    return user.client.post(f"/sessions/{sid}/turns/estimate", json=body)


def run_cost(db_conn, run_id: str) -> Decimal:
    return db_conn.execute("SELECT cost_in_rands FROM runs WHERE id = %s", (run_id,)).fetchone()["cost_in_rands"]


def counts(db_conn, s3, bucket: str) -> tuple:
    row = db_conn.execute("SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM chat_events) AS events, "
                          "(SELECT count(*) FROM uploads WHERE consumed_at IS NOT NULL) AS used, "
                          "(SELECT count(*) FROM uploads) AS uploads").fetchone()
    objects = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    return row["runs"], row["events"], row["used"], row["uploads"], objects


def assert_close(r, real: Decimal) -> None:
    assert r.status_code == 200, r.text
    cost = r.json()["cost"]
    likely, low, high = (Decimal(cost[k]["zar"]) for k in ("likely", "low", "high"))
    assert real > 0
    assert low <= real <= high, (low, real, high, r.json()["tokens"])
    assert abs(likely - real) / real <= Decimal("0.25"), (likely, real, r.json()["tokens"])


def test_an_estimate_calls_no_model_and_stores_nothing(user, standin, db_conn, s3, bucket):
    sid = user.new_session()
    _, events = user.turn(sid, message="hello there, what can you do?")
    assert events[-1]["event"] == "TurnCompleted"
    upload = uploaded(user, noise_png(300, 200, seed=3))
    calls, before = len(standin.requests()), counts(db_conn, s3, bucket)
    r = estimate(user, sid, message="and a photo", images=[{"data": b64(sunset_png()), "mime_type": "image/png"},
                                                           {"upload_id": upload["upload_id"]}],
                 client_turn_id="c-1")
    assert r.status_code == 200, r.text
    body = r.json()
    TurnEstimate.model_validate(body)  # as the spec says
    assert body["session_id"] == sid and body["model_calls"]["likely"] == 1 and body["model_calls"]["high"] >= 1
    assert body["tokens"]["new"] > 2 * 8  # the text and two photos
    for k in ("low", "likely", "likely_without_cache", "high"):
        assert Decimal(body["cost"][k]["zar"]) > 0 and Decimal(body["cost"][k]["usd"]) > 0
    assert len(standin.requests()) == calls and counts(db_conn, s3, bucket) == before
    assert upload_row(db_conn, upload["upload_id"])["consumed_at"] is None
    # the upload is still the turn's to send
    _, events = user.turn(sid, message="and a photo", images=[{"upload_id": upload["upload_id"]}])
    assert events[-1]["event"] == "TurnCompleted"


def test_someone_elses_session_is_404_and_a_bad_body_422(user, other_user, standin):
    sid = user.new_session()
    r = estimate(other_user, sid, message="whose?")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = estimate(user, str(uuid.uuid4()), message="nobody's")
    assert r.status_code == 404
    for body in ({}, {"message": "   "}, {"message": 5}, {"message": "x", "images": [{"data": "%%%", "mime_type": "image/png"}]}):
        r = estimate(user, sid, **body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = user.client.post(f"/sessions/{sid}/turns/estimate", content=b"{not json")
    assert r.status_code == 422
    assert estimate(user, "not-a-uuid", message="x").status_code == 422
    assert standin.requests() == []


def test_the_plans_limit_that_would_refuse_the_turn_is_reported_and_the_estimate_is_not_a_turn(user, standin, db_conn):
    plan = new_plan(db_conn, user, turns_per_minute=2)
    sid = user.new_session()
    for i in range(4):  # estimates count against no turn limit
        r = estimate(user, sid, message=f"how much {i}?")
        assert r.status_code == 200 and r.json()["refusal"] is None, r.text
    for i in range(2):
        _, events = user.turn(sid, message=f"question {i}")
        assert events[-1]["event"] == "TurnCompleted"
    r = estimate(user, sid, message="a third?")
    assert r.status_code == 200
    refusal = r.json()["refusal"]
    assert refusal["status"] == 429 and refusal["limit"] == "turns-per-minute" and refusal["plan"] == plan
    assert 1 <= refusal["retry_after"] <= 60
    r, _ = user.turn(sid, message="a third?")
    assert r.status_code == 429  # as the estimate said


def test_the_budget_left_and_a_turn_the_budget_cannot_cover(user, standin, db_conn):
    sid = user.new_session()
    assert estimate(user, sid, message="no budget").json()["budget"] is None
    budgets.set_budget(db_conn, user.sub, Decimal("50"))
    _, events = user.turn(sid, message="spend a little")
    assert events[-1]["event"] == "TurnCompleted"
    spent = db_conn.execute("SELECT sum(cost_in_rands) AS s FROM runs WHERE session_id = %s", (sid,)).fetchone()["s"]
    body = estimate(user, sid, message="how much is left?").json()
    assert Decimal(body["budget"]["monthly_budget_zar"]) == 50
    assert Decimal(body["budget"]["left_zar"]) == Decimal(50) - spent
    assert body["refusal"] is None
    budgets.set_budget(db_conn, user.sub, spent + Decimal("0.0000001"))
    body = estimate(user, sid, message="and now?").json()
    assert body["refusal"]["status"] == 402 and body["refusal"]["code"] == "budget-exceeded"


def test_the_database_down_is_a_503_with_retry_after(user, standin, postgres_down):  # noqa: F811
    r = estimate(user, str(uuid.uuid4()), message="anyone?")
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert r.headers["content-type"].startswith("application/problem+json")


MESSAGES = [
    "Hi! I'm planning a trip to Cape Town in March. What should I pack?",
    "Is it usually windy then? I heard about the Cape Doctor.",
    "What about hiking Table Mountain, which route is easiest for a beginner?",
    "How long does Platteklip Gorge take, roughly, and should I start early?",
    "Could you suggest three restaurants near the V&A Waterfront with a view?",
    "And a day trip to the winelands: Stellenbosch or Franschhoek, and why?",
    "Thanks. Summarise the whole plan for me as a short day-by-day list, please.",
    "One more: what's a sensible daily budget in rands for food and transport?",
]


def test_each_turns_estimate_lies_within_a_quarter_of_its_real_cost(user, other_user, standin, db_conn, own_recent_turns):
    # a session's first estimate goes by the newest first call of the same agent: another user's here
    _, events = other_user.turn(other_user.new_session(), message="Hello! Where should I travel in May?")
    assert events[-1]["event"] == "TurnCompleted"
    sid = user.new_session()
    for i, message in enumerate(MESSAGES):
        body = {"message": message}
        if i == 3:
            body["images"] = [{"data": b64(sunset_png(800, 600)), "mime_type": "image/png"}]
        r = estimate(user, sid, **body)
        response, events = user.turn(sid, **body)
        assert events[-1]["event"] == "TurnCompleted", events[-1]
        assert_close(r, run_cost(db_conn, response.headers["X-Run-Id"]))


def test_with_no_call_to_go_by_the_real_cost_still_lies_between_low_and_high(user, standin, db_conn, own_recent_turns):
    sid = user.new_session()  # the first session of the deployment (each test has its own database)
    r = estimate(user, sid, message=MESSAGES[0])
    response, events = user.turn(sid, message=MESSAGES[0])
    assert events[-1]["event"] == "TurnCompleted"
    cost, real = r.json()["cost"], run_cost(db_conn, response.headers["X-Run-Id"])
    assert Decimal(cost["low"]["zar"]) <= real <= Decimal(cost["high"]["zar"]), r.json()


def test_a_cold_cache_is_estimated_without_the_read(user, standin, db_conn, own_recent_turns):
    sid = user.new_session()
    for message in MESSAGES[:3]:
        _, events = user.turn(sid, message=message)
        assert events[-1]["event"] == "TurnCompleted"
    warm = estimate(user, sid, message=MESSAGES[3]).json()
    assert warm["cache_warm"] is True and warm["tokens"]["cache_read"] > 0
    # six minutes later: the 5-minute cache entries have expired, in the stand-in and by the rows' clock
    standin.advance_clock(360)
    db_conn.execute("UPDATE chat_events SET created_at = created_at - interval '6 minutes' WHERE session_id = %s", (sid,))
    r = estimate(user, sid, message=MESSAGES[3])
    cold = r.json()
    assert cold["cache_warm"] is False and cold["tokens"]["cache_read"] == 0
    assert cold["cost"]["likely"] == cold["cost"]["likely_without_cache"]
    assert Decimal(cold["cost"]["likely"]["zar"]) > Decimal(warm["cost"]["likely"]["zar"])
    response, events = user.turn(sid, message=MESSAGES[3])
    assert events[-1]["event"] == "TurnCompleted"
    assert_close(r, run_cost(db_conn, response.headers["X-Run-Id"]))


def estimate_then_turn(user, db_conn, sid: str, message: str) -> dict:
    """The estimate of ``message`` in ``sid``, then the turn, whose real cost it must be close to."""
    r = estimate(user, sid, message=message)
    response, events = user.turn(sid, message=message)
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    assert_close(r, run_cost(db_conn, response.headers["X-Run-Id"]))
    return r.json()


@pytest.fixture()
def own_recent_turns(monkeypatch):
    """The agent's calls per turn over its last turn alone: this test's own (the suite shares a database,
    and other tests' turns of the same agent, scripted ones included, would make the figure theirs)."""
    from chatcore.store import turns

    monkeypatch.setattr(turns, "RECENT_TURNS", 1)


def test_a_message_asking_to_remember_is_priced_with_its_tool_loop(user, other_user, standin, db_conn,
                                                                   own_recent_turns):
    # the assistant calls its memory tool, then answers: two model calls where a plain message makes one
    _, events = other_user.turn(other_user.new_session(), message="Hello! Where should I travel in May?")
    assert events[-1]["event"] == "TurnCompleted"
    sid = user.new_session()
    assert estimate(user, sid, message="What is a good name for a cat?").json()["model_calls"]["likely"] == 1
    body = estimate_then_turn(user, db_conn, sid, "Remember this: my locker code is 7319.")
    assert body["model_calls"]["likely"] == 2


def test_once_a_session_has_a_turn_its_own_turns_say_how_many_calls_the_next_makes(
        user, other_user, standin, db_conn, monkeypatch):
    # the agent's recent turns, another user's, each call the calculator (two calls a turn)
    from chatcore.store import turns

    monkeypatch.setattr(turns, "RECENT_TURNS", 3)
    for _ in range(3):
        _, events = other_user.turn(other_user.new_session(), message="What is 12 * 7?")
        assert events[-1]["event"] == "TurnCompleted"
    sid = user.new_session()
    # its first turn goes by the agent's (and asks to remember: the memory tool's loop, two calls)
    first = estimate_then_turn(user, db_conn, sid, "Remember this: my locker code is 7319.")
    assert first["model_calls"]["likely"] == 2
    # then by its own: the request to remember explained its loop, so plain questions make one call
    for message in MESSAGES[:2]:
        assert estimate_then_turn(user, db_conn, sid, message)["model_calls"]["likely"] == 1


def test_a_team_sessions_estimate_counts_its_members_calls(user, other_user, standin, db_conn, own_recent_turns):
    # the planner's leader delegates each message to a member (its own model call, its tool call) and
    # answers after it: its recent turns' calls, anyone's, price the members' calls and the leader's second
    r = other_user.client.post("/sessions", json={"team": "planner"})
    assert r.status_code == 201, r.text
    _, events = other_user.turn(r.json()["id"], message="What is 12 * 7?")
    assert events[-1]["event"] == "TurnCompleted"
    r = user.client.post("/sessions", json={"team": "planner"})
    sid = r.json()["id"]
    bodies = [estimate_then_turn(user, db_conn, sid, message) for message in
              ("What is 340 * 12?", "What is 18 * 35?", "What is 27 * 41?")]
    calls = db_conn.execute(
        "SELECT count(*) AS n FROM chat_events ce JOIN runs r ON r.id = ce.run_id "
        "WHERE r.session_id = %s AND ce.role = 'assistant' AND ce.input_tokens + ce.cache_read_tokens > 0",
        (sid,)).fetchone()["n"]
    assert calls >= 3 * 3  # a leader's two calls and a member's at least, each turn
    assert all(b["model_calls"]["likely"] >= 3 for b in bodies), [b["model_calls"] for b in bodies]


def test_a_web_search_agents_estimate_prices_its_searches(user, other_user, standin, db_conn, own_recent_turns):
    _, events = other_user.turn(other_user.new_session("researcher"), message="Search the web for Cape Town weather")
    assert events[-1]["event"] == "TurnCompleted"
    assert db_conn.execute("SELECT sum(web_searches) AS n FROM chat_events").fetchone()["n"] >= 1
    sid = user.new_session("researcher")
    for message in ("Search the web for the best hikes near Stellenbosch",
                    "Search the web for restaurants open late in Franschhoek",
                    "Search the web for the ferry times to Robben Island"):
        estimate_then_turn(user, db_conn, sid, message)
    searched = db_conn.execute("SELECT sum(ce.web_searches) AS n FROM chat_events ce WHERE ce.session_id = %s",
                               (sid,)).fetchone()["n"]
    assert searched >= 3


def test_a_photo_upload_is_sized_from_its_header_alone(user, other_user, standin, db_conn, own_recent_turns):
    from chatcore.media import s3 as media_s3
    from chatcore.media.uploads import HEADER_BYTES
    from chatcore.turns.estimate import size_tokens

    _, events = other_user.turn(other_user.new_session(), message="Hello! Where should I travel in May?")
    assert events[-1]["event"] == "TurnCompleted"
    photo = noise_png(640, 480, seed=11)
    assert len(photo) > 2 * HEADER_BYTES  # the header is a small part of it
    ranges: list[str | None] = []

    def seen(request, **_):
        value = request.headers.get("Range")
        ranges.append(value.decode() if isinstance(value, bytes) else value)

    client = media_s3.client()
    client.meta.events.register("before-send.s3.GetObject", seen)
    try:
        sid = user.new_session()
        upload = uploaded(user, photo)
        body = {"message": "What is in this photo?", "images": [{"upload_id": upload["upload_id"]}]}
        r = estimate(user, sid, **body)
        assert r.status_code == 200, r.text
        assert ranges == [f"bytes=0-{HEADER_BYTES - 1}"]  # one ranged GET: the header
        text = estimate(user, sid, message=body["message"]).json()["tokens"]["new"]
        assert r.json()["tokens"]["new"] == text + size_tokens((640, 480))
        response, events = user.turn(sid, **body)
        assert events[-1]["event"] == "TurnCompleted"
        assert ranges[1:] == [None]  # the turn reads it whole (to normalise and store it)
        assert_close(r, run_cost(db_conn, response.headers["X-Run-Id"]))
    finally:
        client.meta.events.unregister("before-send.s3.GetObject", seen)


def test_an_upload_the_estimate_cannot_use_is_refused_as_the_turn_would(user, other_user, standin):
    sid = user.new_session()
    theirs = uploaded(other_user, noise_png(64, 48, seed=1))
    r = estimate(user, sid, message="whose?", images=[{"upload_id": theirs["upload_id"]}])
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    wrong = uploaded(user, noise_png(64, 48, seed=2), mime_type="image/jpeg")  # a PNG declared a JPEG
    r = estimate(user, sid, message="which?", images=[{"upload_id": wrong["upload_id"]}])
    assert r.status_code == 422 and r.json()["field"] == "images[0].upload_id", r.text


def test_the_estimates_reads_by_agent_use_their_index(user, standin, db_conn):
    # FIRST_CALL_OF_AGENT and ESTIMATE_CALLS walk the agent's last turns by runs_agent_recent (0021), not
    # a scan of every session or run, for an agent whose turns are few among many (the planner is told to
    # avoid scans, as it does once tables are large; for the agent of most turns, walking the primary key
    # backwards is as good, and the planner may choose it)
    from chatcore.store.turns import ESTIMATE_CALLS, FIRST_CALL_OF_AGENT, OWN_MESSAGE_CHARS, OWN_TURNS, RECENT_TURNS

    sid = user.new_session()
    _, events = user.turn(sid, message="hello")
    assert events[-1]["event"] == "TurnCompleted"

    def plan(sql: str) -> str:
        for name, value in (("session_id", f"'{sid}'"), ("cache_ttl", "300"), ("conversation", "'a-rare-agent'"),
                            ("recent_turns", str(RECENT_TURNS)), ("own_turns", str(OWN_TURNS)),
                            ("message_chars", str(OWN_MESSAGE_CHARS))):
            sql = sql.replace(f"%({name})s", value)
        return "\n".join(r["QUERY PLAN"] for r in db_conn.execute("EXPLAIN " + sql).fetchall())

    db_conn.execute("ANALYZE runs")
    with db_conn.transaction():
        db_conn.execute("SET LOCAL enable_seqscan = off")
        first, calls = plan(FIRST_CALL_OF_AGENT), plan(ESTIMATE_CALLS)
    assert "runs_agent_recent" in first, first
    assert "runs_agent_recent" in calls, calls
