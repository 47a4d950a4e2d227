"""Web search (issue 26): an agent that searches (``researcher``, Anthropic's web_search server tool)
streams its answer's sources as a Citations event and shows them in GET /messages; each search is
priced from the price data in the row, /usage and the rollup; the next turn replays the search's
blocks unchanged to a stand-in that refuses altered results or citations."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from chatcore.catalog.agents import agent_specs
from chatcore.money import rollup
from chatcore.money.prices import default_price_book
from tests.support.model_requests import accepted

QUESTION = "Please search the web for the Cape Town load shedding schedule"
SEARCH_BLOCKS = ("server_tool_use", "web_search_tool_result")


def _search_blocks(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["type"] in SEARCH_BLOCKS or (b["type"] == "text" and b.get("citations"))]


def test_a_web_search_turn_cites_its_sources_is_priced_and_is_replayed_unchanged(user, standin, db_conn):
    spec = agent_specs()["researcher"]
    session_id = user.new_session(agent="researcher")
    r, events = user.turn(session_id, message=QUESTION)
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", r.text

    [first] = accepted(standin)
    [tool] = [t for t in first["body"]["tools"] if t.get("type") == "web_search_20250305"]
    assert tool == {"type": "web_search_20250305", "name": "web_search", "max_uses": spec.web_search.max_uses}
    answer = first["response"]["content"]
    sent_citation = next(b for b in answer if b.get("citations"))["citations"][0]

    # the stream: a Citations event with each source's url, title and cited text, nothing encrypted
    [cited] = [e["data"] for e in events if e["event"] == "Citations"]
    assert cited["citations"] == [{"url": sent_citation["url"], "title": sent_citation["title"],
                                   "cited_text": sent_citation["cited_text"]}]
    assert cited["session_id"] == session_id and cited["agent_name"] == "researcher"
    leaks = [(e["event"], key) for e in events for key in ("encrypted_content", "encrypted_index", "web_search_tool_result")
             if key in json.dumps(e["data"])]
    assert not leaks, [e for e in events if e["event"] in {n for n, _ in leaks}]

    # the row keeps the blocks exactly as returned; GET /messages shows the sources
    [row] = db_conn.execute("SELECT message_parts, web_searches, cost_usd, cost_in_rands, web_search_cost_usd, "
                            "web_search_cost_in_rands, input_tokens, output_tokens, cache_read_tokens, "
                            "cache_write_tokens, fx_rate FROM chat_events "
                            "WHERE session_id = %s AND role = 'assistant'", (session_id,)).fetchall()
    assert row["message_parts"]["provider_data"]["content_blocks"] == answer
    items = user.client.get(f"/sessions/{session_id}/messages").json()["items"]
    [shown] = [m for m in items if m["role"] == "assistant"]
    assert shown["citations"] == cited["citations"]
    assert all(m["citations"] == [] for m in items if m["role"] != "assistant")

    # priced: USD 10 per 1,000 searches from the price data, inside the row's cost
    assert row["web_searches"] == first["response"]["usage"]["server_tool_use"]["web_search_requests"] == 1
    price = default_price_book().find(spec.model_id, datetime.now(timezone.utc))
    assert price.web_searches_kcount == Decimal("10")
    assert row["web_search_cost_usd"] == Decimal("0.01")
    assert row["web_search_cost_in_rands"] == (Decimal("0.01") * row["fx_rate"]).quantize(Decimal("1e-10"))
    from chatcore.money.prices import TokenUsage
    tokens = price.cost_usd(TokenUsage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
                                       row["cache_write_tokens"]))
    assert row["cost_usd"] == (tokens + Decimal("0.01")).quantize(Decimal("1e-10"))
    final = events[-1]["data"]
    assert Decimal(final["cost"]["usd"]) == row["cost_usd"]

    usage = user.client.get("/usage").json()
    assert usage["totals"]["web_searches"] == 1
    assert Decimal(usage["totals"]["web_search_cost"]["usd"]) == Decimal("0.01")
    assert Decimal(usage["totals"]["cost"]["usd"]) == row["cost_usd"]
    [by_agent] = usage["by_agent"]
    assert by_agent["name"] == "researcher" and by_agent["web_searches"] == 1
    today = datetime.now(timezone.utc).date()
    rollup.rollup(db_conn, today, today)
    rolled = db_conn.execute("SELECT sum(cost_usd) AS usd, sum(web_searches) AS searches, "
                             "sum(web_search_cost_usd) AS search_usd FROM daily_costs d "
                             "JOIN users u ON u.id = d.user_id WHERE u.sub = %s", (user.sub,)).fetchone()
    assert (rolled["usd"], rolled["searches"], rolled["search_usd"]) == (row["cost_usd"], 1, Decimal("0.01"))

    # the next turn replays the search's blocks unchanged (the stand-in refuses them altered)
    r, events = user.turn(session_id, message="Thanks. Which area is worst?")
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", r.text
    requests = accepted(standin)
    assert len(requests) == 2
    replayed = [b for m in requests[1]["body"]["messages"] if m["role"] == "assistant"
                for b in _search_blocks(m["content"] if isinstance(m["content"], list) else [])]
    # unchanged but for the cache breakpoint the history's last block carries (turns.claude)
    assert [{k: v for k, v in b.items() if k != "cache_control"} for b in replayed] == _search_blocks(answer)
    assert replayed[-1]["cache_control"] == {"type": "ephemeral"}
    assert not [e for e in events if e["event"] == "Citations"]
    second = db_conn.execute("SELECT web_searches, web_search_cost_usd FROM chat_events WHERE session_id = %s "
                             "AND role = 'assistant' ORDER BY id DESC LIMIT 1", (session_id,)).fetchone()
    assert (second["web_searches"], second["web_search_cost_usd"]) == (0, 0)


def test_an_altered_search_result_in_the_history_is_refused(user, standin, db_conn):
    """What the stand-in checks is what the replay protects: a stored result changed by hand fails."""
    session_id = user.new_session(agent="researcher")
    r, events = user.turn(session_id, message=QUESTION)
    assert events[-1]["event"] == "TurnCompleted", r.text
    db_conn.execute("""UPDATE chat_events SET message_parts = jsonb_set(message_parts,
                       '{provider_data,content_blocks,1,content,0,title}', '"changed"')
                       WHERE session_id = %s AND role = 'assistant'""", (session_id,))
    db_conn.commit()
    r, events = user.turn(session_id, message="And tomorrow?")
    assert events[-1]["event"] == "TurnFailed", [e["event"] for e in events]
    assert standin.requests()[-1]["response"]["status"] == 400


def test_the_turns_location_reaches_the_search_and_is_never_stored(user, standin, db_conn):
    session_id = user.new_session(agent="researcher")
    location = {"country": "za", "region": "Western Cape", "city": "Stellenbosch", "timezone": "Africa/Johannesburg"}
    r, events = user.turn(session_id, message=QUESTION, location=location)
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", r.text
    assert events[-1]["data"]["usage"]["web_searches"] == 1
    [first] = accepted(standin)
    [tool] = [t for t in first["body"]["tools"] if t.get("type") == "web_search_20250305"]
    assert tool["user_location"] == {"type": "approximate", "country": "ZA", "region": "Western Cape",
                                     "city": "Stellenbosch", "timezone": "Africa/Johannesburg"}
    # used for the request only: nothing stored names it
    stored = db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id = %s "
                             "AND message_parts::text LIKE '%%Stellenbosch%%'", (session_id,)).fetchone()
    events_stored = db_conn.execute("SELECT count(*) AS n FROM turn_events te JOIN runs r ON r.id = te.run_id "
                                    "WHERE r.session_id = %s AND te.data::text LIKE '%%Stellenbosch%%'",
                                    (session_id,)).fetchone()
    assert (stored["n"], events_stored["n"]) == (0, 0)
    # a turn without a location sends none; an agent that does not search ignores it
    r, events = user.turn(session_id, message="Please search the web for tomorrow's schedule")
    assert events[-1]["event"] == "TurnCompleted", r.text
    assert "user_location" not in next(t for t in accepted(standin)[-1]["body"]["tools"]
                                       if t.get("type") == "web_search_20250305")
    plain = user.new_session()
    r, events = user.turn(plain, message="hello", location={"country": "ZA"})
    assert events[-1]["event"] == "TurnCompleted", r.text
    assert "usage" in events[-1]["data"] and "web_searches" not in events[-1]["data"]["usage"]


def test_a_bad_location_is_refused_before_anything_is_stored(user, standin, db_conn):
    session_id = user.new_session(agent="researcher")
    for location, field in (({"country": "South Africa"}, "country"), ({"timezone": "not a zone"}, "timezone"),
                            ({"city": ""}, "city"), ({"street": "Long St"}, "street")):
        r, _ = user.turn(session_id, message=QUESTION, location=location)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert any(e["loc"][-1] == field for e in r.json()["errors"]), r.json()
    assert standin.requests() == []
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (session_id,)).fetchone()["n"] == 0


def test_a_stream_cut_after_a_search_still_bills_the_search(user, standin, db_conn):
    session_id = user.new_session(agent="researcher")
    standin.script([{"search": "load shedding", "cut_after_chars": 12, "text": "The schedule for today is"}] * 3)
    r, events = user.turn(session_id, message=QUESTION)
    final = events[-1]
    assert final["event"] == "TurnFailed", [e["event"] for e in events]
    calls = len(standin.requests())  # the SDK's retries: each a search that ran and is billed
    rows = db_conn.execute("SELECT web_searches, web_search_cost_usd, cost_usd FROM chat_events "
                           "WHERE session_id = %s AND role = 'assistant'", (session_id,)).fetchall()
    assert sum(r["web_searches"] for r in rows) == calls >= 1
    assert sum(r["web_search_cost_usd"] for r in rows) == Decimal("0.01") * calls
    assert final["data"]["usage"]["web_searches"] == calls
    assert Decimal(final["data"]["cost"]["usd"]) == sum(r["cost_usd"] for r in rows)
    usage = user.client.get("/usage").json()
    assert usage["totals"]["web_searches"] == calls
