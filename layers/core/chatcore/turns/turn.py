"""A turn as it passes from ``begin`` to ``run`` to ``finish``: what was asked (``TurnInput``), a
turn whose run and user message are stored, ready to run (``PreparedTurn``), and a retried
``client_turn_id`` whose turn is already stored (``KnownTurn``).

Plain data, so every step names the same shapes without importing another step; the types of the
fields are named for type checkers only (no agno import here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from agno.models.message import Message

    from chatcore.media.images import ImageUpload
    from chatcore.money.cost import CostCalculator
    from chatcore.turns.agent import Conversation
    from chatcore.turns.compaction import Compaction
    from chatcore.turns.memory import MemoryScope
    from chatcore.turns.outcome import TurnOutcome


@dataclass
class TurnInput:
    sub: str
    session_id: UUID
    message: str
    images: list[ImageUpload] = field(default_factory=list)
    client_turn_id: str | None = None
    stored_keys: list[str] = field(default_factory=list)  # the photos this request put in S3


@dataclass
class PreparedTurn:
    """A turn whose run and user message are stored, ready to run."""

    input: TurnInput
    run_id: UUID
    conversation: Conversation
    history: list[Message]
    user_message: Message
    costs: CostCalculator
    compaction: Compaction | None = None  # older turns this turn folded into the session's summary
    memory: MemoryScope | None = None  # the user's memory, when on: its tools act for this turn
    client_disconnected: bool = False
    outcome: TurnOutcome | None = None


@dataclass
class KnownTurn:
    """A retried ``client_turn_id``: the turn is stored (running or finished), and its stream is
    followed from its stored events (``turns.turn_events``) instead of running it again."""

    session_id: UUID
    run_id: UUID
