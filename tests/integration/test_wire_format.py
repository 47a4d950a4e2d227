"""What generated mobile clients rely on, on the wire: every decimal is a plain string (never
``"0E-10"``), in JSON bodies and in the turn's events alike; every event's ``data`` names its event
(``"event"``), live, resumed and replayed; problems match the Problem schema of docs/openapi.json.

One scenario through the served API: a turn that costs nothing (its usage all zeros), a priced
one, a team turn, a failed one and a stopped one; their streams replayed, resumed after
``Last-Event-ID`` and, once pruned, answered with the final event rebuilt from the run; then every
JSON route a chat screen reads and a few problems. Every body and every event's data is walked.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

import httpx

from chatcore.wire import sse
from chatcore.wire.amounts import DECIMAL_PATTERN
from chatcore.wire.schemas import Problem
from tests.support.streams import read_events

# A number written with an exponent, as str(Decimal) writes numeric(20, 10) zero: "0E-10", "1.5E+3".
EXPONENT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+$")
ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
              "cache_creation_input_tokens": 0}


def exponent_strings(value: Any, where: str = "$") -> list[str]:
    """Every string in a JSON value written like a number with an exponent, with its JSON path."""
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in exponent_strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in exponent_strings(v, f"{where}[{i}]")]
    return [f"{where} = {value!r}"] if isinstance(value, str) and EXPONENT.match(value.strip()) else []


class Seen:
    """Every JSON body and every event the scenario received, to be walked at the end."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        self.streams: list[tuple[str, list[dict]]] = []

    def json(self, label: str, response: httpx.Response) -> Any:
        assert response.headers["content-type"].startswith(("application/json", "application/problem+json")), label
        body = response.json()
        self.bodies.append((label, body))
        return body

    def events(self, label: str, events: list[dict]) -> list[dict]:
        assert events, f"{label}: no event"
        self.streams.append((label, events))
        return events


def problem(seen: Seen, label: str, response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (label, response.status_code, response.text)
    body = seen.json(label, response)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert body["code"] == code and Problem.model_validate(body).status == status  # the documented schema
    return body


def a_turn_that_costs_nothing(user, standin, seen: Seen, sid: str) -> tuple[str, list[dict]]:
    """Zero tokens of every kind: its cost is zeros written plainly. Returns its run id and events."""
    standin.script([{"text": "nothing to pay for", "usage": ZERO_USAGE}])
    r, free = user.turn(sid, message="hello", client_turn_id="free-1")
    assert r.status_code == 200, r.text
    final = seen.events("free turn", free)[-1]
    assert final["event"] == "TurnCompleted" and final["data"]["usage"]["cache_read_tokens"] == 0
    assert final["data"]["cost"] == {"usd": "0.0000000000", "zar": "0.0000000000"}  # not "0E-10"
    return r.headers["x-run-id"], free


def a_priced_a_team_and_a_failed_turn(user, standin, seen: Seen, sid: str) -> str:
    """Returns the team's session."""
    _, priced = user.turn(sid, message="What is 12 * 7?")
    assert seen.events("priced turn", priced)[-1]["event"] == "TurnCompleted"
    assert Decimal(priced[-1]["data"]["cost"]["usd"]) > 0
    team = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    _, team_events = user.turn(team, message="What is 2 * 8?")
    assert seen.events("team turn", team_events)[-1]["event"] == "TurnCompleted"
    assert any(e["data"].get("parent_run_id") for e in team_events)  # the members' own events are in it
    standin.script([{"error": {"status": 400, "type": "invalid_request_error", "message": "bad"}}])
    _, failed = user.turn(sid, message="fails")
    assert seen.events("failed turn", failed)[-1]["event"] == "TurnFailed"
    return team


def a_stopped_turn(user, standin, seen: Seen, sid: str, server_url: str) -> None:
    standin.script([{"text": " ".join(f"w{i}" for i in range(80)), "delay_ms": 40}])
    with httpx.Client(base_url=server_url, headers=user.headers, timeout=60) as c:
        with c.stream("POST", f"/sessions/{sid}/turns", json={"message": "a long story"}) as stream:
            stopped_run, lines = stream.headers["x-run-id"], stream.iter_lines()
            stopped = read_events(lines, stop_after=lambda ev: sum(e["event"] == "RunContent" for e in ev) == 2)
            seen.json("cancel", c.post(f"/sessions/{sid}/turns/{stopped_run}/cancel"))
            stopped += read_events(lines)
    assert seen.events("stopped turn", stopped)[-1]["event"] == "TurnCancelled"


def the_free_turn_replayed_resumed_and_rebuilt(user, db_conn, seen: Seen, sid: str, free_run: str,
                                               free: list[dict]) -> None:
    """Replayed, resumed after Last-Event-ID, pruned to its final event, and with no event stored,
    rebuilt from its run; a retried POST of it is answered from what is stored: the same final event."""
    from chatcore.store import turn_events
    from chatcore.turns.outcome import FINAL_EVENTS

    final = free[-1]
    replay = sse.parse(user.client.get(f"/sessions/{sid}/turns/{free_run}/events").text)
    assert seen.events("replay", replay) == free
    resumed = sse.parse(user.client.get(f"/sessions/{sid}/turns/{free_run}/events",
                                        headers={"Last-Event-ID": "2"}).text)
    assert seen.events("resumed", resumed) == free[2:]
    db_conn.execute("UPDATE runs SET finished_at = now() - interval '25 hours' WHERE id = %s", (free_run,))
    assert turn_events.prune_events(db_conn, 24, keep=FINAL_EVENTS.values()) >= len(free) - 1
    (kept,) = seen.events("pruned", sse.parse(user.client.get(f"/sessions/{sid}/turns/{free_run}/events").text))
    assert kept == final  # the final event stays, as it was sent
    db_conn.execute("DELETE FROM turn_events WHERE run_id = %s", (free_run,))  # as if it had never been stored
    (rebuilt,) = seen.events("rebuilt", sse.parse(user.client.get(f"/sessions/{sid}/turns/{free_run}/events").text))
    assert rebuilt["data"]["replayed"] is True and rebuilt["data"]["cost"] == final["data"]["cost"]
    again = user.turn(sid, message="hello", client_turn_id="free-1")[1]
    assert seen.events("retried", again)[-1]["data"]["cost"] == final["data"]["cost"]


def what_a_chat_screen_reads(user, db_conn, seen: Seen, sid: str, team: str) -> None:
    db_conn.execute("UPDATE users SET monthly_budget_zar = 50 WHERE sub = %s", (user.sub,))
    for label, path in [("agents", "/agents"), ("teams", "/teams"), ("sessions", "/sessions"),
                        ("session", f"/sessions/{sid}"), ("messages", f"/sessions/{sid}/messages"),
                        ("team messages", f"/sessions/{team}/messages"), ("usage", "/usage")]:
        r = user.client.get(path)
        assert r.status_code == 200, (label, r.text)
        seen.json(label, r)
    messages = dict(seen.bodies)["messages"]["items"]
    user_message = next(m for m in messages if m["role"] == "user")
    assert user_message["cost"] == {"usd": "0.0000000000", "zar": "0.0000000000"}  # a stored zero, not "0E-10"
    assert re.match(DECIMAL_PATTERN, dict(seen.bodies)["usage"]["budget"]["spent_zar"])


def a_few_problems(user, db_conn, seen: Seen, sid: str, free_run: str) -> None:
    finished = problem(seen, "turn-finished", user.client.post(f"/sessions/{sid}/turns/{free_run}/cancel"),
                       409, "turn-finished")
    assert (finished["run_id"], finished["run_status"]) == (free_run, "completed")
    invalid = problem(seen, "invalid-input", user.client.get("/sessions", params={"limit": 0}), 422, "invalid-input")
    assert invalid["errors"] and all({"loc", "msg"} <= set(e) for e in invalid["errors"])
    problem(seen, "not-found", user.client.get(f"/sessions/{uuid.uuid4()}/messages"), 404, "not-found")
    db_conn.execute("UPDATE users SET monthly_budget_zar = 0.01 WHERE sub = %s", (user.sub,))
    over = problem(seen, "budget-exceeded", user.client.post(f"/sessions/{sid}/turns", json={"message": "more"}),
                   402, "budget-exceeded")
    assert re.match(DECIMAL_PATTERN, over["spent_zar"]) and re.match(DECIMAL_PATTERN, over["reservation_zar"])


def assert_no_exponent_anywhere_and_every_event_names_itself(seen: Seen) -> None:
    assert exponent_strings({"cost": ["0.0000000000", "0E-10"]}) == ["$.cost[1] = '0E-10'"]  # the walker sees one
    hits = [f"{label}: {hit}" for label, body in seen.bodies for hit in exponent_strings(body)]
    hits += [f"{label} #{e['id']} {e['event']}: {hit}" for label, events in seen.streams for e in events
             for hit in exponent_strings(e["data"])]
    assert not hits, "decimals written with an exponent:\n" + "\n".join(hits)
    unnamed = [f"{label} #{e['id']} {e['event']}: {e['data'].get('event')!r}" for label, events in seen.streams
               for e in events if e["data"].get("event") != e["event"]]
    assert not unnamed, "events whose data does not name them:\n" + "\n".join(unnamed)
    # every event is what the registry (and so docs/openapi.json's TurnEvent) documents
    off = [f"{label} #{e['id']} {e['event']}: {problem}" for label, events in seen.streams for e in events
           if (problem := sse.check(e["event"], json.dumps(e["data"])))]
    assert not off, "events off their documented schema:\n" + "\n".join(off)
    assert {e["event"] for _, events in seen.streams for e in events} >= {
        "RunStarted", "RunContent", "ToolCallStarted", "ToolCallCompleted", "RunCompleted", "RunError",
        "RunCancelled", "TeamRunStarted", "TeamToolCallStarted", "TeamRunCompleted", "TurnCompleted", "TurnFailed",
        "TurnCancelled"}


def test_every_decimal_is_a_plain_string_and_every_event_names_itself(user, standin, db_conn, server_url):
    seen = Seen()
    sid = user.new_session()
    free_run, free = a_turn_that_costs_nothing(user, standin, seen, sid)
    team = a_priced_a_team_and_a_failed_turn(user, standin, seen, sid)
    a_stopped_turn(user, standin, seen, sid, server_url)
    the_free_turn_replayed_resumed_and_rebuilt(user, db_conn, seen, sid, free_run, free)
    what_a_chat_screen_reads(user, db_conn, seen, sid, team)
    a_few_problems(user, db_conn, seen, sid, free_run)
    assert_no_exponent_anywhere_and_every_event_names_itself(seen)
