"""A turn as it passes from ``begin`` to ``run`` to ``finish``: what was asked (``TurnInput``), a
turn whose run and user message are stored, ready to run (``PreparedTurn``), and a retried
``client_turn_id`` whose turn is already stored (``KnownTurn``).

Plain data, so every step names the same shapes without importing another step; the types of the
fields are named for type checkers only (no agno import here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from agno.models.message import Message

    from chatcore.media.documents import DocumentUpload
    from chatcore.media.images import ImageUpload
    from chatcore.money.cost import CostCalculator
    from chatcore.turns.agent import Conversation
    from chatcore.turns.compaction import Compaction, CompactionPlan
    from chatcore.turns.memory import MemoryScope
    from chatcore.turns.outcome import TurnOutcome


@dataclass
class TurnInput:
    sub: str
    session_id: UUID
    message: str
    images: list[ImageUpload] = field(default_factory=list)
    client_turn_id: str | None = None
    stored_keys: list[str] = field(default_factory=list)  # the photos and documents this request put in S3
    documents: list[DocumentUpload] = field(default_factory=list)  # checked PDFs
    # the user's approximate location (country, region, city, timezone) for web searches: never stored
    location: dict[str, str] | None = None
    # the plan's RateLimit / RateLimit-Policy headers, as begin found them (``money.plans``)
    rate_limit_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetAtStart:
    """The user's monthly budget and the month's spend as the turn's start read them: whether its cost
    may cross a budget warning (``money.budgets.claim_warnings``)."""

    user_id: UUID
    budget_zar: Decimal
    spent_zar: Decimal


@dataclass
class PreparedTurn:
    """A turn whose run and user message are stored, ready to run."""

    input: TurnInput
    run_id: UUID
    conversation: Conversation
    history: list[Message]
    user_message: Message
    costs: CostCalculator
    compacting: CompactionPlan | None = None  # the compaction this turn starts, beside its model call
    compaction: Compaction | None = None  # older turns this turn folded into the session's summary
    memory: MemoryScope | None = None  # the user's memory, when on: its tools act for this turn
    client_disconnected: bool = False
    outcome: TurnOutcome | None = None
    continuation: Continuation | None = None  # a paused run continued after the user's decision
    budget: BudgetAtStart | None = None  # the user has a monthly budget

    def input_ids(self) -> set[str]:
        """The ids of the messages the run was given (stored already): never stored again."""
        ids = {m.id for m in self.history} | {self.user_message.id}
        if self.continuation is not None:
            ids |= self.continuation.input_ids
        return ids


@dataclass
class MemberResume:
    """A team member whose call paused the team run: its run, its messages so far ending with the
    results of the decided calls, and the leader's delegation that waits for its answer."""

    agent_name: str
    run_id: str
    messages: list[Message]
    delegation_call_id: str | None

    def leader_result(self, content: object) -> Message:
        """The delegation's tool result for the leader: the member's answer."""
        from agno.models.message import Message

        text = content if isinstance(content, str) else str(content or "")
        return Message(role="tool", tool_call_id=self.delegation_call_id, tool_name="delegate_task_to_member",
                       content=text.strip() or "(the member gave no answer)")


@dataclass
class Continuation:
    """What a continued run adds to a ``PreparedTurn``: what its runs cost before the pause (run id ->
    usage, USD, ZAR: the run rows get the sums), the member to resume first (a team), and the ids of
    messages stored already (the results of the decided calls)."""

    prior: dict[str, tuple] = field(default_factory=dict)
    member: MemberResume | None = None
    input_ids: set[str] = field(default_factory=set)
    last_seq: int = 0  # the last event id of the run's stream so far (its TurnPaused)
    decided: list = field(default_factory=list)  # the decided calls' ToolCallCompleted events, sent first


@dataclass
class KnownTurn:
    """A retried ``client_turn_id``: the turn is stored (running or finished), and its stream is
    followed from its stored events (``turns.turn_events``) instead of running it again."""

    session_id: UUID
    run_id: UUID
