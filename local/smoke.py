"""Smoke-test a deployed stage: `bin/smoke URL TOKEN [--agent NAME] [--timeout SECONDS] [--prompt TEXT]`.

One short conversation, as the app has it, against a stage's URL (e.g.
https://abc123.execute-api.af-south-1.amazonaws.com/prod) with a user's Cognito token (ID or access
token; `bin/serve` prints a local one): list the agents, start a session, stream a turn (its
server-sent events read as they arrive, until its final event), read the turn back, check the usage
answers, pause a turn for the user's approval (an agent with `set_reminder`: "Remind me to call mom at
18:00" ends with TurnPaused and GET /sessions/{id} shows it) and decline it (the rest of the run
streams to TurnCompleted, no reminder is set, a second decision is 409 turn-not-paused; skipped for an
agent without an acting tool), delete the session and check it is gone. Each step is printed with its timing. The session
is deleted even when a later step fails (a turn still running is stopped first).

The turn makes one real model call and the pause two more, so it costs a cent or so on a deployed stage.

Exit status: 0 when every step passed, 1 when one failed (the step, the HTTP status and the
problem+json body are printed), 2 for bad arguments. Only httpx is needed (no chatcore, no AWS SDK).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

FINAL_EVENTS = ("TurnCompleted", "TurnFailed", "TurnCancelled")
PAUSED_EVENT = "TurnPaused"  # ends a paused turn's stream (an acting tool waits for the user's decision)
DEFAULT_PROMPT = "What is 12 * 7? Answer in one short sentence."
# the pause: a turn that asks an agent with set_reminder for a reminder, then declined (nothing is set)
PAUSE_PROMPT = "Remind me to call mom at 18:00"
ACTING_TOOL = "set_reminder"
DEFAULT_TIMEOUT = 60.0
MAX_BODY_CHARS = 2000
CLEANUP_SECONDS = 30  # at least this long to stop a turn still running and delete its session


# ---------------------------------------------------------------- server-sent events


@dataclass
class SSEEvent:
    """One dispatched event: ``id`` (None when the event set none), ``event`` ("message" when it set
    none) and ``data`` (its data lines joined with newlines)."""

    id: str | None
    event: str
    data: str


class SSEDecoder:
    """An incremental ``text/event-stream`` parser, as the WHATWG HTML standard defines it: feed it
    the text as it arrives (split anywhere, even between ``\\r`` and ``\\n``), get the complete
    events back. Lines end with ``\\n``, ``\\r\\n`` or ``\\r``; a line starting with ``:`` is a
    comment (counted in ``comments``: the server's ``: ping``); ``field: value`` sets a field (one
    leading space of the value dropped); a blank line dispatches the event when it has data."""

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False
        self._id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._pending = False  # a field was read since the last dispatch
        self.comments: list[str] = []

    def feed(self, text: str) -> list[SSEEvent]:
        if not self._started and text:
            text = text.removeprefix("\ufeff")
            self._started = True
        self._buffer += text
        events = []
        while True:
            match = re.search(r"\r\n|\r|\n", self._buffer)
            # a "\r" at the very end may be the first half of a "\r\n" split across two reads
            if match is None or (match.group() == "\r" and match.end() == len(self._buffer)):
                break
            line, self._buffer = self._buffer[:match.start()], self._buffer[match.end():]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def end(self) -> list[SSEEvent]:
        """The stream is over: a last line without its line break is still a line; an event without
        its closing blank line is dropped (the standard's rule), see ``incomplete``."""
        events = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip("\r"), ""
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    @property
    def incomplete(self) -> bool:
        """Fields were read that no blank line has dispatched yet (the stream was cut mid-event)."""
        return self._pending or bool(self._buffer)

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            event = None
            if self._data:
                event = SSEEvent(id=self._id, event=self._event or "message", data="\n".join(self._data))
            self._event, self._data, self._pending = "", [], False
            return event
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._pending = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value  # the last event id carries over to later events, as the standard says
        # "retry" and unknown fields are ignored
        return None


# ---------------------------------------------------------------- the turn's stream


class StepFailed(Exception):
    """A step's check failed; ``response`` (if any) is shown with its status and body."""

    def __init__(self, problem: str, response: httpx.Response | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.response = response


@dataclass
class TurnStream:
    """What a turn's stream held: its events (id as an int, name, JSON data), the ``: ping``
    comments, the text of its content events, and its final event."""

    events: list[tuple[int, str, dict]] = field(default_factory=list)
    pings: int = 0
    text: str = ""
    final: tuple[str, dict] | None = None
    first_event_seconds: float | None = None


def read_turn(chunks: Iterable[str], run_id: str, *, clock: Callable[[], float] = time.monotonic,
              deadline: float | None = None, first_id: int = 1, pause: bool = False) -> TurnStream:
    """Read a turn's stream until it ends, checking it as the API promises: every event has an
    integer ``id`` one more than the last, an ``event`` name and one line of JSON ``data``; the
    events' ``run_id`` is the response's ``X-Run-Id``; the stream ends with exactly one final event
    (TurnCompleted, TurnFailed or TurnCancelled) and nothing after it. Raises StepFailed otherwise,
    and for a TurnFailed or TurnCancelled (with the event's error). ``pause``: a TurnPaused ends the
    stream too (a turn that waits for the user's approval); ``first_id``: the id the stream starts
    at (a decision's stream goes on after its pause's ids)."""
    decoder = SSEDecoder()
    turn = TurnStream()
    start = clock()

    def take(events: list[SSEEvent]) -> None:
        for ev in events:
            where = f"event {len(turn.events) + 1} ({ev.event!r}, id {ev.id!r})"
            if turn.final is not None:
                raise StepFailed(f"{where} came after the final event {turn.final[0]}")
            if ev.id is None or not ev.id.isdigit():
                raise StepFailed(f"{where} has no integer id")
            seq = int(ev.id)
            expected = turn.events[-1][0] + 1 if turn.events else first_id
            if seq != expected:
                after = f"after {turn.events[-1][0]}" if turn.events else "as the first"
                raise StepFailed(f"{where}: id {seq} {after} (expected {expected})")
            if ev.event == "message":
                raise StepFailed(f"{where} has no event name")
            try:
                data = json.loads(ev.data)
            except ValueError as e:
                raise StepFailed(f"{where}: data is not JSON ({e}): {ev.data[:200]!r}") from e
            if not isinstance(data, dict):
                raise StepFailed(f"{where}: data is not a JSON object: {ev.data[:200]!r}")
            if turn.first_event_seconds is None:
                turn.first_event_seconds = clock() - start
            turn.events.append((seq, ev.event, data))
            # agno's own events carry the member's run id; the turn's own and final events carry the turn's
            is_member = data.get("parent_run_id") is not None
            if (len(turn.events) == 1 or ev.event in FINAL_EVENTS) and not is_member \
                    and data.get("run_id") not in (None, run_id):
                raise StepFailed(f"{where}: run_id {data.get('run_id')!r} is not the X-Run-Id header {run_id!r}")
            if ev.event in ("RunContent", "TeamRunContent") and not is_member and isinstance(data.get("content"), str):
                turn.text += data["content"]
            if ev.event in FINAL_EVENTS or (pause and ev.event == PAUSED_EVENT):
                if data.get("run_id") != run_id:
                    raise StepFailed(f"{where}: the final event's run_id {data.get('run_id')!r} is not the "
                                     f"X-Run-Id header {run_id!r}")
                turn.final = (ev.event, data)

    try:
        for chunk in chunks:
            take(decoder.feed(chunk))
            if deadline is not None and clock() > deadline and turn.final is None:
                raise StepFailed(f"no final event within the timeout ({len(turn.events)} events so far)")
    except httpx.TransportError as e:  # the connection dropped or stalled mid-stream
        if turn.final is None:
            last = f" (the last: {turn.events[-1][1]}, id {turn.events[-1][0]})" if turn.events else ""
            how = ("stalled (nothing within --timeout seconds, not even a ping)"
                   if isinstance(e, httpx.TimeoutException) else "broke")
            raise StepFailed(f"the stream {how} after {len(turn.events)} events{last}, before a final event: "
                             f"{_describe(e)}") from e
        # the final event arrived whole: a connection that ends untidily after it loses nothing
    take(decoder.end())
    turn.pings = sum(1 for c in decoder.comments if c == "ping")
    if turn.final is None:
        cut = " (cut in the middle of an event)" if decoder.incomplete else ""
        last = f"; the last was {turn.events[-1][1]} (id {turn.events[-1][0]})" if turn.events else ""
        raise StepFailed(f"the stream ended without a final event (TurnCompleted, TurnFailed or TurnCancelled) "
                         f"after {len(turn.events)} events{cut}{last}")
    name, data = turn.final
    if name == "TurnFailed":
        error = data.get("error") or {}
        raise StepFailed(f"the turn failed: TurnFailed {error.get('code')!r}: {error.get('message')} "
                         f"(retryable: {error.get('retryable')})")
    if name == "TurnCancelled":
        raise StepFailed("the turn was cancelled (TurnCancelled): someone stopped it")
    return turn


# ---------------------------------------------------------------- the smoke test


def _body(response: httpx.Response) -> str:
    try:
        response.read()
        text = response.text
    except (httpx.HTTPError, httpx.StreamError) as e:
        return f"(the body could not be read: {e})"
    if response.headers.get("content-type", "").split(";")[0].strip() in ("application/problem+json",
                                                                          "application/json"):
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + f"... ({len(text)} characters)"
    return text or "(empty body)"


def _expect(response: httpx.Response, status: int, what: str) -> Any:
    """The response's JSON when it has ``status`` (None for a 204), else StepFailed."""
    if response.status_code != status:
        raise StepFailed(f"{what}: HTTP {response.status_code}, expected {status}", response)
    if status == 204:
        return None
    try:
        return response.json()
    except ValueError as e:
        raise StepFailed(f"{what}: the body is not JSON", response) from e


def _describe(error: httpx.HTTPError) -> str:
    """A transport error (no connection, a timeout, a dropped stream) with the request it broke."""
    text = f"{error.__class__.__name__}: {error or 'no detail'}"
    try:
        return f"{text} ({error.request.method} {error.request.url})"
    except RuntimeError:  # an error raised before any request was made
        return text


def _subject(token: str) -> str | None:
    """The ``sub`` in a JWT's payload, read without checking anything (for the heading only)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims.get("sub") if isinstance(claims, dict) else None


class Smoke:
    """The steps, each printed as it finishes: ``ok``/``FAIL``, its number and name, its seconds."""

    def __init__(self, base_url: str, token: str, *, agent: str | None, prompt: str, timeout: float,
                 out=sys.stdout) -> None:
        self.agent = agent
        self.prompt = prompt
        self.timeout = timeout
        self.out = out
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                   headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                            "User-Agent": "agent-chat-backend bin/smoke"})
        self.step_number = 0
        self.session_id: str | None = None
        self.run_id: str | None = None
        self.deleted = False
        self.tools: list[str] = []  # the agent's
        self.paused: dict | None = None  # the pause step's TurnPaused (its data and id)

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    def step(self, name: str, action: Callable[[], str]) -> None:
        self.step_number += 1
        label = f"{self.step_number} {name}"
        start = time.monotonic()
        try:
            detail = action()
        except StepFailed as e:
            self.say(f"FAIL  {label:<22} {time.monotonic() - start:6.2f} s  {e.problem}")
            if e.response is not None:
                self.say(f"      HTTP {e.response.status_code} {e.response.reason_phrase} "
                         f"({e.response.headers.get('content-type', 'no content-type')}):")
                for line in _body(e.response).splitlines():
                    self.say(f"      {line}")
            raise _Failed(label) from e
        except httpx.HTTPError as e:
            self.say(f"FAIL  {label:<22} {time.monotonic() - start:6.2f} s  {_describe(e)}")
            raise _Failed(label) from e
        self.say(f"ok    {label:<22} {time.monotonic() - start:6.2f} s  {detail}")

    # the steps

    def list_agents(self) -> str:
        agents = _expect(self.client.get("/agents"), 200, "GET /agents")
        names = [a.get("name") for a in agents if isinstance(a, dict)] if isinstance(agents, list) else []
        if not names:
            raise StepFailed(f"GET /agents offers no agent: {agents!r}")
        if self.agent is None:
            self.agent = names[0]
        elif self.agent not in names:
            raise StepFailed(f"no agent {self.agent!r} is offered; the agents are {', '.join(names)}")
        self.tools = next((list(a.get("tools") or []) for a in agents if a.get("name") == self.agent), [])
        return f"{len(names)} agent(s): {', '.join(names)}; using {self.agent!r}"

    def create_session(self) -> str:
        title = f"bin/smoke {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S')} UTC"
        body = _expect(self.client.post("/sessions", json={"agent": self.agent, "title": title}), 201,
                       "POST /sessions")
        if not isinstance(body, dict) or not body.get("id"):
            raise StepFailed(f"POST /sessions answered no session id: {body!r}")
        self.session_id = str(body["id"])
        if body.get("agent") != self.agent:
            raise StepFailed(f"the session's agent is {body.get('agent')!r}, not {self.agent!r}")
        return f"session {self.session_id}"

    def stream_turn(self) -> str:
        client_turn_id = f"smoke-{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.timeout
        with self.client.stream("POST", f"/sessions/{self.session_id}/turns",
                                json={"message": self.prompt, "client_turn_id": client_turn_id},
                                headers={"Accept": "text/event-stream"}) as r:
            if r.status_code != 200:
                r.read()
                raise StepFailed(f"POST /sessions/{{id}}/turns: HTTP {r.status_code}, expected 200", r)
            content_type = r.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                r.read()
                raise StepFailed(f"the turn answered {content_type!r}, not text/event-stream", r)
            self.run_id = r.headers.get("x-run-id")
            if not self.run_id:
                raise StepFailed("the turn's response (HTTP 200, text/event-stream) has no X-Run-Id header")
            turn = read_turn(r.iter_text(), self.run_id, deadline=deadline)
        data = turn.final[1]
        usage, cost = data.get("usage") or {}, data.get("cost") or {}
        if not turn.text.strip():
            raise StepFailed(f"TurnCompleted, but no text was streamed ({len(turn.events)} events)")
        answer = " ".join(turn.text.split())
        answer = answer if len(answer) <= 80 else answer[:77] + "..."
        return (f"TurnCompleted, run {self.run_id} (= X-Run-Id): {len(turn.events)} events, {turn.pings} ping(s), "
                f"first after {turn.first_event_seconds:.2f} s; {usage.get('input_tokens')} in / "
                f"{usage.get('output_tokens')} out tokens, USD {cost.get('usd')}, ZAR {cost.get('zar')}; "
                f"answer: {answer!r}")

    def _stream(self, path: str, body: dict, run_id: str | None, **read: Any) -> tuple[str, TurnStream]:
        deadline = time.monotonic() + self.timeout
        with self.client.stream("POST", path, json=body, headers={"Accept": "text/event-stream"}) as r:
            if r.status_code != 200:
                r.read()
                raise StepFailed(f"POST {path}: HTTP {r.status_code}, expected 200", r)
            run = r.headers.get("x-run-id")
            if not run or (run_id is not None and run != run_id):
                raise StepFailed(f"POST {path} answered X-Run-Id {run!r}" + (f", not {run_id!r}" if run_id else ""))
            return run, read_turn(r.iter_text(), run, deadline=deadline, **read)

    def pause_turn(self) -> str:
        """A turn that asks for a reminder pauses for the user's approval (TurnPaused, its card's summary)."""
        if ACTING_TOOL not in self.tools:
            return f"skipped: {self.agent!r} has no {ACTING_TOOL} (no tool that waits for approval)"
        run_id, turn = self._stream(f"/sessions/{self.session_id}/turns", {"message": PAUSE_PROMPT}, None, pause=True)
        name, data = turn.final
        if name != PAUSED_EVENT:
            raise StepFailed(f"the turn asking {PAUSE_PROMPT!r} ended {name}, not {PAUSED_EVENT} (the model did not "
                             f"call {ACTING_TOOL}?)")
        pending = data.get("pending") or []
        if not pending or not all(c.get("tool_call_id") and c.get("summary") for c in pending):
            raise StepFailed(f"TurnPaused has no pending call with an id and a summary: {data!r}")
        self.paused = {"run_id": run_id, "id": turn.events[-1][0], "pending": pending}
        shown = _expect(self.client.get(f"/sessions/{self.session_id}"), 200, "GET /sessions/{id}")
        if (shown.get("turn_paused") or {}).get("run_id") != run_id:
            raise StepFailed(f"GET /sessions/{{id}} does not show the paused turn {run_id}: {shown.get('turn_paused')!r}")
        return (f"TurnPaused, run {run_id}: {len(pending)} pending call(s): "
                + "; ".join(f"{c.get('tool')}: {c.get('summary')!r}" for c in pending))

    def decline(self) -> str:
        """The user declines every pending call: the rest of the run streams to TurnCompleted, nothing is set."""
        if self.paused is None:
            return "skipped: no paused turn"
        run_id = self.paused["run_id"]
        decisions = [{"tool_call_id": c["tool_call_id"], "approved": False, "note": "bin/smoke declines"}
                     for c in self.paused["pending"]]
        _, turn = self._stream(f"/sessions/{self.session_id}/turns/{run_id}/approvals", {"decisions": decisions},
                               run_id, first_id=self.paused["id"] + 1)
        reminders = _expect(self.client.get("/me/reminders", params={"limit": 100}), 200, "GET /me/reminders")
        set_by_it = [r for r in (reminders.get("items") or []) if str(r.get("run_id")) == run_id]
        if set_by_it:
            raise StepFailed(f"a declined reminder was set anyway: {set_by_it!r}")
        again = self.client.post(f"/sessions/{self.session_id}/turns/{run_id}/approvals", json={"decisions": decisions})
        problem = _expect(again, 409, "a second decision")
        if problem.get("code") != "turn-not-paused":
            raise StepFailed(f"a second decision is 409 {problem.get('code')!r}, not 'turn-not-paused'", again)
        return (f"declined: {turn.final[0]} after {len(turn.events)} more events (ids from {self.paused['id'] + 1}); "
                "no reminder set; a second decision is 409 turn-not-paused")

    def read_back(self) -> str:
        page = _expect(self.client.get(f"/sessions/{self.session_id}/messages", params={"limit": 200}), 200,
                       "GET /sessions/{id}/messages")
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise StepFailed(f"GET /sessions/{{id}}/messages has no items: {page!r}")
        of_turn = [m for m in items if isinstance(m, dict) and str(m.get("run_id")) == self.run_id]
        roles = [m.get("role") for m in of_turn]
        if not any(m.get("role") == "user" and m.get("text") == self.prompt for m in of_turn):
            raise StepFailed(f"no user message with the prompt in run {self.run_id} (its roles: {roles})")
        if not any(m.get("role") == "assistant" and (m.get("text") or "").strip() for m in of_turn):
            raise StepFailed(f"no assistant message with text in run {self.run_id} (its roles: {roles})")
        return f"{len(of_turn)} message(s) of the turn: {', '.join(roles)}"

    def check_usage(self) -> str:
        today = datetime.now(timezone.utc).date()  # a day either side: the server's clock may differ
        body = _expect(self.client.get("/usage", params={"from": (today - timedelta(days=1)).isoformat(),
                                                         "to": (today + timedelta(days=1)).isoformat()}),
                       200, "GET /usage")
        totals = body.get("totals") if isinstance(body, dict) else None
        if not isinstance(totals, dict) or not isinstance(totals.get("turns"), int):
            raise StepFailed(f"GET /usage has no totals: {body!r}")
        if totals["turns"] < 1:
            raise StepFailed(f"GET /usage counts no turn since yesterday: {totals!r}")
        cost = totals.get("cost") or {}
        return f"{totals['turns']} turn(s) since yesterday (UTC), ZAR {cost.get('zar')}"

    def delete_session(self) -> str:
        _expect(self.client.delete(f"/sessions/{self.session_id}"), 204, "DELETE /sessions/{id}")
        self.deleted = True
        return f"session {self.session_id} deleted"

    def check_gone(self) -> str:
        r = self.client.get(f"/sessions/{self.session_id}")
        body = _expect(r, 404, "GET /sessions/{id} after DELETE")
        code = body.get("code") if isinstance(body, dict) else None
        if code != "not-found":
            raise StepFailed(f"GET /sessions/{{id}} after DELETE is 404 but its code is {code!r}, not 'not-found'", r)
        return "GET /sessions/{id} is 404 not-found"

    def cleanup(self) -> None:
        """Delete the session after a failed step; a turn still running (the stream broke) is stopped
        first (it notices within a second or two). Never raises: says what it did."""
        deadline = time.monotonic() + max(self.timeout, CLEANUP_SECONDS)
        start = time.monotonic()
        cancelled = False
        try:
            while True:
                r = self.client.delete(f"/sessions/{self.session_id}")
                if r.status_code in (204, 404):
                    what = "deleted" if r.status_code == 204 else "already gone (404)"
                    self.say(f"cleanup: session {self.session_id} {what} ({time.monotonic() - start:.2f} s)")
                    return
                problem = r.json() if r.headers.get("content-type", "").endswith("json") else {}
                if r.status_code == 409 and problem.get("code") == "turn-in-progress" and time.monotonic() < deadline:
                    run_id = problem.get("run_id") or self.run_id
                    if not cancelled and run_id:
                        self.client.post(f"/sessions/{self.session_id}/turns/{run_id}/cancel")
                        self.say(f"cleanup: a turn still runs in the session; asked it to stop (run {run_id})")
                        cancelled = True
                    time.sleep(0.5)
                    continue
                self.say(f"cleanup: could NOT delete session {self.session_id}: HTTP {r.status_code}")
                for line in _body(r).splitlines():
                    self.say(f"      {line}")
                return
        except (httpx.HTTPError, ValueError) as e:
            self.say(f"cleanup: could NOT delete session {self.session_id}: {e.__class__.__name__}: {e}")

    def run(self) -> int:
        start = time.monotonic()
        try:
            self.step("list agents", self.list_agents)
            self.step("create session", self.create_session)
            self.step("stream turn", self.stream_turn)
            self.step("read messages", self.read_back)
            self.step("usage", self.check_usage)
            self.step("pause", self.pause_turn)
            self.step("decline", self.decline)
            self.step("delete session", self.delete_session)
            self.step("session gone", self.check_gone)
        except _Failed as failed:
            if self.session_id is not None and not self.deleted:
                self.cleanup()
            self.say(f"smoke test FAILED at step {failed.args[0]} ({time.monotonic() - start:.2f} s)")
            return 1
        except KeyboardInterrupt:
            self.say(f"\ninterrupted during step {self.step_number}")
            if self.session_id is not None and not self.deleted:
                self.cleanup()
            return 130
        finally:
            self.client.close()
        self.say(f"smoke test passed: {self.step_number} steps in {time.monotonic() - start:.2f} s")
        return 0


class _Failed(Exception):
    """A step failed (it has said why); carries the step's label."""


# ---------------------------------------------------------------- the command


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL; give the stage's base URL, e.g. "
            "https://abc123.execute-api.af-south-1.amazonaws.com/prod (or http://127.0.0.1:8000 for bin/serve)")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{value!r}: give the stage's base URL, without a query or fragment")
    return value.rstrip("/")


def _token(value: str) -> str:
    token = value.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise argparse.ArgumentTypeError("the token is empty (is $TOKEN set?): give a Cognito ID or access token")
    if any(c.isspace() for c in token):
        raise argparse.ArgumentTypeError("the token contains whitespace: give the token alone")
    return token


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 900:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of seconds above 0 and at most 900")
    return seconds


def _prompt(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("the prompt is empty")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/smoke", description="Smoke-test a deployed stage (or bin/serve): list the agents, start a "
        "session, stream a turn, read it back, check the usage, pause a turn for approval and decline it, "
        "delete the session; each step timed.",
        usage="bin/smoke URL TOKEN [--agent NAME] [--timeout SECONDS] [--prompt TEXT]",
        epilog="Exit status: 0 passed, 1 a step failed (the session it made is still deleted), 2 bad arguments.")
    parser.add_argument("url", metavar="URL", type=_url,
                        help="the stage's base URL, e.g. https://abc123.execute-api.af-south-1.amazonaws.com/prod")
    parser.add_argument("token", metavar="TOKEN", type=_token,
                        help="a Cognito ID or access token of a user (locally: the one bin/serve prints)")
    parser.add_argument("--agent", metavar="NAME", help="the agent to talk to (default: the first GET /agents lists)")
    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"the most any step may take, the streamed turn included (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--prompt", type=_prompt, default=DEFAULT_PROMPT, metavar="TEXT", help=f"the turn's message (default {DEFAULT_PROMPT!r})")
    args = parser.parse_args(argv)
    sub = _subject(args.token)
    print(f"bin/smoke: {args.url}" + (f" as sub {sub!r}" if sub else ""), flush=True)
    return Smoke(args.url, args.token, agent=args.agent, prompt=args.prompt, timeout=args.timeout).run()


if __name__ == "__main__":
    sys.exit(main())
