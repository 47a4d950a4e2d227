"""The documentation of a turn's server-sent events, shown in the OpenAPI document and docs/api.md."""

TURN_EVENTS_DESCRIPTION = """\
Streams the turn as server-sent events (`text/event-stream`). Every event has three fields:

    id: <sequence number, 1, 2, 3, ... within the response>
    event: <name>
    data: <one line of JSON>

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

**The final event** is exactly one of:

* `TurnCompleted`: `{"session_id", "run_id", "usage": {"input_tokens", "output_tokens",
  "cache_read_tokens", "cache_write_tokens"}, "cost": {"usd": "<decimal>", "zar": "<decimal>"},
  "tool_errors": <int>, "member_errors": [{"run_id", "agent_name", "code", "message"}],
  "duration_ms": <int>}`. Usage and cost add up every model call of the turn, a team's members
  included. `"replayed": true` when answering a repeated `client_turn_id` from what is stored.
* `TurnFailed`: `{"session_id", "run_id", "error": {"code", "message"}, "usage", "cost"}`. Codes:
  `model-error[:<type>]` (the model API failed after retries), `internal-error`, `storage-error`.
  Calls that completed before the failure are stored and charged.

Errors found before the stream starts are `application/problem+json` with a 4xx status.
"""
