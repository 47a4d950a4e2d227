"""Server-sent events: one frame per event, media bytes never sent to the phone; and the
documentation of a turn's events (the OpenAPI document and docs/api.md show it).

Every event's ``data`` is made here (``payload``): one line of JSON whose ``event`` key is the
event's name (a client that reads only the data, or a generated model, still knows what it is),
decimals as plain strings (``chatcore.wire.amounts``), checked against the event's model in the
registry (``chatcore.wire.events``): an event the registry does not know, or data its model refuses,
is logged (once per event name and process) and still sent, so a new agno version never breaks a
turn, and the tests fail on it. The check runs once per process for each event name with a given set
of members (agno leaves out a member it has no value for): later events of the same shape are sent
without it."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from chatcore.wire.amounts import decimal_string

log = logging.getLogger(__name__)
_reported: set[str] = set()  # events already logged as unknown or off their model
# (event, its members) already found to conform: checked once per process (the check is a pydantic
# validation, about a third of an event's cost, and a turn sends a dozen events or more)
_conforming: set[tuple[str, frozenset[str]]] = set()
_MOST_SHAPES = 1000

MEDIA_KEYS = {"content", "url", "filepath"}


def _strip_media(value: Any) -> Any:
    """Drop base64 content and transient URLs of media objects; keep their ids and types."""
    if isinstance(value, dict):
        is_media = "mime_type" in value or "media_reference" in value or "format" in value
        out = {}
        for k, v in value.items():
            if is_media and k in MEDIA_KEYS and isinstance(v, (str, bytes)):
                continue
            if k == "media_reference" and isinstance(v, dict):
                out[k] = {rk: rv for rk, rv in v.items() if rk not in ("url", "bucket", "storage_key")}
                continue
            out[k] = _strip_media(v)
        return out
    if isinstance(value, list):
        return [_strip_media(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_string(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def payload(event: str, data: dict[str, Any]) -> str:
    """The ``data`` of the event named ``event`` as sent: one line of JSON that starts with
    ``"event": <its name>``, media bytes and URLs left out, checked against its model (``check``)."""
    text = json.dumps(_strip_media({"event": event, **{k: v for k, v in data.items() if k != "event"}}),
                      default=_default, separators=(",", ":"))
    shape = (event, frozenset(data))
    if event in _reported or shape in _conforming:
        return text
    if problem := check(event, text):
        _reported.add(event)
        log.warning("the %s event is not what the API documents (sent anyway): %s", event, problem)
    elif len(_conforming) < _MOST_SHAPES:
        _conforming.add(shape)
    return text


def check(event: str, payload_text: str) -> str | None:
    """What is wrong with an event's data as the registry of events documents it (None: nothing)."""
    from pydantic import ValidationError

    from chatcore.wire.events import model_of

    model = model_of(event)
    if model is None:
        return "no such event in chatcore.wire.events"
    try:
        model.model_validate_json(payload_text)
    except ValidationError as e:
        return str(e)
    return None


def frame_of(seq: int, event: str, payload_text: str) -> bytes:
    """One SSE frame from an event's ``payload`` (a stored event is sent again with the same bytes)."""
    return f"id: {seq}\nevent: {event}\ndata: {payload_text}\n\n".encode()


def frame(seq: int, event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: ``id``, ``event`` and a single-line JSON ``data``."""
    return frame_of(seq, event, payload(event, data))


# An SSE comment, sent when nothing else was for HEARTBEAT_SECONDS: iOS drops a request idle for
# 60 s, API Gateway's streaming one idle for 5 minutes, and a model or a tool can be silent longer.
HEARTBEAT = b": ping\n\n"


def parse(stream_text: str) -> list[dict[str, Any]]:
    """Parse SSE text into ``[{"id", "event", "data"}]`` (for clients, the demo and tests)."""
    events = []
    for block in stream_text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        item: dict[str, Any] = {}
        data_lines = []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            key, _, val = line.partition(":")
            val = val[1:] if val.startswith(" ") else val
            if key == "data":
                data_lines.append(val)
            elif key in ("id", "event"):
                item[key] = val
        if data_lines:
            item["data"] = json.loads("\n".join(data_lines))
        if item:
            events.append(item)
    return events



TURN_EVENTS_DESCRIPTION = """\
Streams the turn as server-sent events (`text/event-stream`). Every event has three fields:

    id: <sequence number of the event in the turn: 1, 2, 3, ...>
    event: <name>
    data: <one line of JSON; its "event" member is the name again>

Each event's data has its own schema, named after the event (`RunContent`, `TurnCompleted`, ...);
`TurnEvent` is one of them, told apart by `event`: the schema this response's content declares.

The response's `X-Run-Id` header, and `run_id` of the first event, name the turn's run. The events
are stored as the turn runs (about every 0.25 s): a client that lost the stream resumes it with
`GET /sessions/{session_id}/turns/{run_id}/events` and `Last-Event-ID: <the last id received>`,
from any instance, with no gap and no repeat. Sending the same `client_turn_id` again (a retried
POST) never runs the turn twice: it answers with the turn's stored stream (after `Last-Event-ID`
when the retry sends it), live while the turn still runs.

**Order.** Agent turn: `RunStarted`, then for each model call `ModelRequestStarted`, `RunContent`*
(`content` is the next chunk of text), `ModelRequestCompleted` (`input_tokens`, `output_tokens`,
`cache_read_tokens`, `cache_write_tokens`, `model`), and for each tool call `ToolCallStarted` /
`ToolCallCompleted` (`tool`: `tool_name`, `tool_args`, `result`, `tool_call_error`) or
`ToolCallError`; then `RunContentCompleted`, `RunCompleted` (`content`: the whole answer, `metrics`).
A failed model call yields `RunError` (`content`: the message, `error_type`).

Team turn: the same with a `Team` prefix for the leader (`TeamRunStarted`, `TeamRunContent`,
`TeamToolCallStarted` for `delegate_task_to_member`, `TeamModelRequestCompleted`, `TeamRunCompleted`,
`TeamRunError`), and between a delegation's `TeamToolCallStarted` and `TeamToolCallCompleted`, the
member's own events (`RunStarted`, `ModelRequestStarted`, `RunContent`, `ToolCallStarted`,
`ToolCallCompleted`, `RunCompleted`, `RunError`), each with the member's `agent_name`, `agent_id`,
its own `run_id` and `parent_run_id` = the team run's id.

Every Agno event carries `created_at`, `run_id`, `session_id` and `agent_name`/`team_name`. Image
bytes and presigned URLs are never sent.

**Memory.** While the user has memory on (`PUT /me/settings`), the agent or the team's leader may
save, change or forget what it remembers about the user (its `remember`, `update_memory` and
`forget_memory` tool calls). Each change is a `MemoryUpdated` event, right after that tool call's
`ToolCallCompleted` (`TeamToolCallCompleted`): `{"action": "saved" | "updated" | "forgotten" |
"consolidated", "memory_id", "text", "previous_text" (updated), "memory_ids", "replaced"
(consolidated: the memories were merged to stay within their budget, `text` being the fact added),
"session_id", "run_id"}`. For "Saved to memory · Undo": `DELETE /me/memories/{memory_id}` undoes a
saved one, `PATCH /me/memories/{memory_id}` with `previous_text` an updated one.

**Thinking.** An agent (or a team's member) that thinks (extended thinking: `thinker`) sends, for each
model call that thinks, `ThinkingStarted`, then `ThinkingDelta` events (`{"text"}`: the next piece of the
thinking, the summary Claude returns of it), then `ThinkingCompleted` (`{"redacted": true}` when Claude
encrypted part of it: nothing of that part is shown), before that call's answer or tool call; each with
`session_id`, `run_id` and the `agent_name` (a member's: with `parent_run_id`). Agno's events never carry
the thinking, its signatures or its encrypted data. The stored thinking: `GET /sessions/{id}/messages?include=thinking`.

**Citations.** An agent that searches the web (`researcher`) sends, once a model call whose answer
cites web pages ends, `Citations`: `{"citations": [{"url", "title", "cited_text"}]}` with `session_id`,
`run_id` and the `agent_name` (a member's: with `parent_run_id`). Agno's events never carry the search
results or the citations. The stored sources: each message's `citations` in `GET /sessions/{id}/messages`.

**BudgetWarning.** A turn that takes the month's spend past 80 % or 100 % of the user's monthly budget
(their own, or their plan's) sends, just before the final event, `BudgetWarning`: `{"percent": 80 | 100,
"month": "YYYY-MM", "monthly_budget_zar", "spent_zar"}` with `session_id` and `run_id`; each once a month.
The warnings of the month stay readable: `GET /usage`, `budget.warnings`.

**The final event** is exactly one of:

* `TurnCompleted`: `{"session_id", "run_id", "usage": {"input_tokens", "output_tokens",
  "cache_read_tokens", "cache_write_tokens", "web_searches"?}, "cost": {"usd": "<decimal>", "zar": "<decimal>"},
  "tool_errors": <int>, "member_errors": [{"run_id", "agent_name", "code", "message"}],
  "duration_ms": <int>}`. Usage and cost add up every model call of the turn, a team's members
  included (`web_searches`: the web searches it ran, each billed; absent when none); amounts are decimal strings, never with an exponent (`"0.0000000000"`, not `"0E-10"`). `"replayed": true` when the final event was rebuilt from the stored run (a turn that
  stored none: its instance ended, or the database was down as it ended); rebuilt once, then stored and
  replayed like any other.
* `TurnCancelled`: the user stopped the turn (`POST .../cancel`): `{"session_id", "run_id", "usage",
  "cost", "duration_ms"}`. What the model generated until then is stored (the answer so far, as
  streamed) and is history for the next turn; what the provider billed for the aborted call is
  charged, with `"usage": {..., "estimated": true}` when part of it is our estimate (the API reports
  no usage for a stream it did not finish). Every stopped run ends with agno's `RunCancelled`
  (`TeamRunCancelled` for a team's leader; a member stopped with it sends its own `RunCancelled`)
  and never with `RunCompleted`, so a stopped turn's stream ends `RunCancelled` (or
  `TeamRunCancelled`), then `TurnCancelled`: a client that takes `RunCompleted` for a finished
  answer never shows a stopped one as complete.
* `TurnFailed`: `{"session_id", "run_id", "error": {"code", "message", "retryable"}, "usage", "cost"}`.
  Codes: `model-error:rate_limited`, `model-error:overloaded`, `model-error:unavailable` (the model
  API was busy or unreachable after retries: `retryable` is true, send the turn again later),
  `model-error:invalid_request` (the API refused the request, e.g. its size: the next turn is built
  smaller), `model-error:misconfigured`, `internal-error`, `storage-error`, `turn-timeout`,
  `abandoned` (the instance running it ended; seen on a resumed stream). Calls that completed
  before the failure are stored and charged.

When nothing else was sent for 15 s (a model or a tool thinking), a comment line `: ping` is sent;
SSE clients ignore it, and it keeps phones and API Gateway from dropping an idle connection.

Errors found before the stream starts are `application/problem+json` with a 4xx status, or 503 with
`Retry-After` when a dependency (Postgres, S3) is down.
"""
