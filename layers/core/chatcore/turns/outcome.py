"""How a turn ended, as one ``TurnOutcome``: its final event, its run row and its metrics all come
from it (``turns.finish`` stores it). Pure, without agno: the events function (``turns.turn_events``)
builds the final event of a stored run from it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from chatcore.money.prices import TokenUsage
from chatcore.wire.amounts import decimal_string

MAX_ERROR_MESSAGE = 2000
# The final events of a turn's stream, by the run's status: exactly one ends every turn (their models
# are in chatcore.wire.events; tests/unit/test_events.py holds the two together).
FINAL_EVENTS = {"completed": "TurnCompleted", "failed": "TurnFailed", "cancelled": "TurnCancelled",
                "expired": "TurnFailed"}
# A turn paused for the user's approval ends its stream with this event, not a final one: the decision
# goes on with the same run and the next event ids (chatcore.turns.approvals).
PAUSED_EVENT = "TurnPaused"
PENDING_FIELDS = ("tool_call_id", "tool", "arguments", "summary", "agent_name")


@dataclass
class RunError:
    code: str
    message: str


RETRYABLE_CODES = frozenset({"model-error:rate_limited", "model-error:overloaded", "model-error:unavailable",
                             "storage-error", "internal-error", "turn-timeout", "abandoned"})


def is_retryable(code: str | None) -> bool:
    """Whether sending the turn again later may succeed (the model or a dependency was unavailable)."""
    return code in RETRYABLE_CODES


@dataclass
class TurnOutcome:
    """How a run ended: ``completed``, ``failed`` or ``cancelled`` (stopped by the user), with its
    tokens and cost (a turn's include its members'). ``error`` fails the run; ``note`` records what
    went wrong in a completed one (tool or member errors). ``usage`` is None only when the outcome
    could not be stored; ``usage_estimated`` when part of it is our estimate of an aborted stream."""

    session_id: UUID
    run_id: UUID
    status: str
    usage: TokenUsage | None = TokenUsage()
    cost_usd: Decimal = Decimal(0)
    cost_zar: Decimal = Decimal(0)
    error: RunError | None = None
    note: RunError | None = None
    tool_errors: int | None = None
    member_errors: list[dict[str, Any]] | None = None
    duration_ms: int | None = None
    replayed: bool = False
    client_disconnected: bool = False
    usage_estimated: bool = False
    # a paused turn (status "paused"): its pending calls (PendingCall's members) and when the pause expires
    pending: list[dict[str, Any]] | None = None
    expires_at: str | None = None
    # what this stretch of the run billed (a continued run's usage and cost include the stretch before
    # its pause; metrics count each stretch once)
    segment: tuple[TokenUsage, Decimal, Decimal] | None = None
    # the database stayed unreachable: the turn was spooled (chatcore.spool), and is stored once it is back
    spooled: bool = False

    @property
    def event_name(self) -> str:
        return PAUSED_EVENT if self.status == "paused" else FINAL_EVENTS[self.status]

    def final_event(self) -> tuple[str, dict[str, Any]]:
        """The last event of the turn's stream: its name and data, made by its model in the registry
        of events (``chatcore.wire.events``; loaded here, so the events function loads pydantic only
        for a final event it rebuilds)."""
        from chatcore.wire import events

        data: dict[str, Any] = {"event": self.event_name, "session_id": str(self.session_id),
                                "run_id": str(self.run_id)}
        if self.status == "paused":
            data.update(pending=[{k: v for k, v in p.items() if k in PENDING_FIELDS and v is not None}
                                 for p in self.pending or []], expires_at=self.expires_at)
        if self.error is not None:
            data["error"] = {"code": self.error.code, "message": self.error.message,
                             "retryable": is_retryable(self.error.code)}
        if self.usage is not None:
            data["usage"] = usage_fields(self.usage)
            if self.usage_estimated:
                data["usage"]["estimated"] = True
            if self.usage.web_searches:
                data["usage"]["web_searches"] = self.usage.web_searches
            data["cost"] = {"usd": decimal_string(self.cost_usd), "zar": decimal_string(self.cost_zar)}
        if self.tool_errors is not None and self.error is None and self.status != "paused":
            data["tool_errors"] = self.tool_errors
        if self.member_errors is not None and self.status != "paused":
            data["member_errors"] = self.member_errors
        if self.replayed:
            data["replayed"] = True
        if self.spooled:
            data["stored"] = "pending"
        if self.duration_ms is not None:
            data["duration_ms"] = self.duration_ms
        final = events.model_of(self.event_name).model_validate(data)
        return self.event_name, final.model_dump(mode="json", exclude_none=True, exclude={"event"})

    def run_row(self) -> dict[str, Any]:
        """The parameters of the run's final update (``store.turns.finish_run``)."""
        problem = self.error or self.note
        return {"id": self.run_id, "status": self.status,
                "error_code": problem.code if problem else None,
                "error_message": problem.message[:MAX_ERROR_MESSAGE] if problem else None,
                "client_disconnected": self.client_disconnected,
                **usage_fields(self.usage or TokenUsage()), "cost_usd": self.cost_usd, "cost_in_rands": self.cost_zar}

    def metrics(self) -> dict[str, Any]:
        """What ``observability.record_turn`` emits: the final event's data with its name; for a run
        that paused before, the usage and cost of this stretch alone (the pause's were emitted then)."""
        name, data = self.final_event()
        if self.segment is not None:
            usage, usd, zar = self.segment
            data["usage"] = usage_fields(usage)
            data["cost"] = {"usd": decimal_string(usd), "zar": decimal_string(zar)}
            data["continued"] = True
        return {"event": name, **data}

    @classmethod
    def from_stored(cls, session_id: UUID, run_id: UUID, row: dict[str, Any]) -> TurnOutcome:
        """The outcome of a turn already stored (a retried ``client_turn_id``), replayed."""
        failed = row["status"] in ("failed", "expired")
        return cls(session_id=session_id, run_id=run_id, status=row["status"],
                   usage=TokenUsage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
                                    row["cache_write_tokens"]),
                   cost_usd=row["cost_usd"], cost_zar=row["cost_in_rands"],
                   error=RunError(row["error_code"], row["error_message"] or "") if failed else None,
                   replayed=True)


def usage_fields(usage: TokenUsage) -> dict[str, int]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens}
