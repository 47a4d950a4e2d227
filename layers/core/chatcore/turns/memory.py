"""The assistant's memory in a turn: the tools the model writes with (``remember``, ``update_memory``,
``forget_memory``: our own, run in-process, no model call of their own), the recall at the start of
the model's input, and the consolidation, a priced model call made inside the tool call that takes
the memories past their limits.

A turn whose user has memory on (and whose agent or team leader ``remembers``) offers the tools
and the instructions below, and its model's input starts with the session's recall
(``recall_messages``: the user's memories as rendered for the session's first turn, the same text
on every later turn, so the history after it stays cached). The tools act for the turn's user only:
``memory_scope`` (set by ``turns.run`` for the turn) names the user, the session and the run; no
tool argument names a user. Each change is streamed as a ``MemoryUpdated`` event right after its
tool call's events (``take_events``).

Consolidation: when a new memory would take the memories past ``MEMORY_MAX_COUNT`` or (recalled)
``MEMORY_MAX_TOKENS``, the tool asks ``CONSOLIDATION_MODEL`` to merge and deduplicate them into at
most half of both, then swaps them in one transaction with the call's run (``memory``, a child run
of the turn) and its priced assistant row: the rollup, budgets and ``/usage`` count it, and the
turn's total includes it. It delays the turn by that tool call only. A consolidation that fails or
whose answer does not fit leaves every memory as it was and saves nothing (the tool says so); a
memory is never dropped to make room.

Why our own tools rather than agno's memory or Claude's memory tool: README.md, "Memory".
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from agno.agent import Agent
from agno.models.message import Message
from uuid6 import uuid7

from chatcore import db
from chatcore.config import get_settings
from chatcore.errors import ProblemError
from chatcore.memory import changes
from chatcore.memory.changes import MemoryChange
from chatcore.memory.facts import (
    CHARS_PER_TOKEN, RECALL_OPENING, SHORT_ID_CHARS, clean_text, fact_key, short_id, within_limits,
)
from chatcore.store import turns as turn_rows
from chatcore.turns.claude import claude
from chatcore.turns.outcome import RunError, TurnOutcome
from chatcore.turns.tracking import RecordedMessage, RunRecord, priced_rows, usage_of

if TYPE_CHECKING:
    from chatcore.money.cost import CostCalculator

log = logging.getLogger(__name__)

MEMORY_AGENT = "memory"  # the agent_name of a consolidation's run
CONSOLIDATION_MODEL = "claude-haiku-5-5"
MEMORY_EVENT = "MemoryUpdated"

# Added to the instructions of an agent or a team leader that remembers, when the user has memory on.
INSTRUCTIONS = (
    "You remember things about this user across conversations with the remember, update_memory and "
    "forget_memory tools; what you remembered before is given at the start of the conversation.",
    "Call remember when the user asks you to remember something or tells you a lasting fact about "
    "themselves (their name, family, diet or allergies, where they live, how they like answers): one "
    "short fact per call, in the user's words. Never remember passwords, card numbers or other secrets.",
    "When a remembered fact changes, call update_memory with its id; when the user asks you to forget "
    "something, call forget_memory. You only ever see and change this user's memories.",
)
RECALL_ACK = "Noted: I will keep what I remember about you in mind."
# A message that asks the assistant to remember, forget or remind (not a question about what it
# remembers): the model calls a memory tool, so the turn makes one more model call (the estimate's
# guess, ``turns.estimate``; the model decides).
ASKS_TO_REMEMBER = re.compile(
    r"(?:^|[.!?]\s+)(?:please\s+)?(?:remember|forget|remind me)\b|\b(?:remember|forget)\s+(?:this|that)\b"
    r"|\bdon'?t\s+forget\b", re.IGNORECASE)

CONSOLIDATION_INSTRUCTIONS = (
    "You consolidate the memories an assistant keeps about one user of a mobile chat app.",
    "Merge memories about the same subject into one, drop repeats, and when two disagree keep the newer "
    "(they are listed oldest first). Keep every distinct fact: names, relationships, allergies and health, "
    "diet, places, dates, numbers and preferences.",
    "Answer with the memories only, one a line, each line starting with '- ', in the user's language.",
)
CONSOLIDATION_PROMPT = (
    "Consolidate these memories into at most {count} memories of at most {chars} characters each, "
    "{total} characters in all.\n\nThe memories, oldest first (the last one is new):\n{memories}")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?:\[[0-9a-f]{8}\]\s*)?(.*\S)\s*$")


@dataclass
class MemoryScope:
    """A turn's memory, when its user has it on: the session's recall (at the start of the model's
    input); what the tools act for (the turn's user, session and run); the changes they made and not
    yet streamed; the consolidations they stored (their outcome counts in the turn's)."""

    user_id: UUID
    session_id: UUID
    run_id: UUID
    costs: CostCalculator
    recall: list[Message] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    stored_runs: list[TurnOutcome] = field(default_factory=list)

    def note(self, change: MemoryChange, text: str | None = None) -> None:
        """Queue the ``MemoryUpdated`` event of a change (``text``: the fact a consolidation took in)."""
        if change.action == "unchanged":
            return
        data: dict[str, Any] = {"action": change.action, "session_id": str(self.session_id),
                                "run_id": str(self.run_id)}
        if change.memory is not None:
            data.update(memory_id=str(change.memory["id"]), text=change.memory["text"])
        if change.previous_text is not None:
            data["previous_text"] = change.previous_text
        if change.action == "consolidated":
            data.update(memory_ids=[str(m["id"]) for m in change.memories], replaced=change.replaced, text=text)
        self.pending.append(data)

    def take_events(self) -> list[dict[str, Any]]:
        """The ``MemoryUpdated`` events not yet streamed, in order (each is streamed once)."""
        events, self.pending[:] = list(self.pending), []
        return events


# Set by turns.run for a turn whose tools may write memories (agno runs the tools in the turn's
# context: a thread started with asyncio.to_thread copies it).
memory_scope: ContextVar[MemoryScope | None] = ContextVar("memory_scope", default=None)


def recall_messages(snapshot: str | None) -> list[Message]:
    """The session's recall as the first exchange of the model's input (none without memories)."""
    if not snapshot:
        return []
    return [Message(role="user", content=snapshot, from_history=True),
            Message(role="assistant", content=RECALL_ACK, from_history=True)]


def _scope() -> MemoryScope:
    scope = memory_scope.get()
    if scope is None:  # never offered outside a turn with memory on
        raise RuntimeError("memory is not available in this conversation")
    return scope


def _refused(e: ProblemError) -> ValueError:
    """A change refused (too long, no such memory...): a tool error the model reads."""
    return ValueError(e.detail)


OFF = "Memory is switched off by the user: nothing was saved or changed."


def remember(text: str) -> str:
    """Save one lasting fact about the user to your memory, to recall in later conversations.

    Args:
        text: The fact, short and in the user's words, e.g. "I prefer metric units".

    Returns:
        What was saved, with the memory's id.
    """
    scope = _scope()
    try:
        change = changes.remember(scope.user_id, text, session_id=scope.session_id, run_id=scope.run_id)
    except changes.MemoryOff:
        return OFF
    except changes.NeedsConsolidation as full:
        consolidated = consolidate(scope, full.stored, full.text)
        if consolidated is None:
            return ("Not saved: the memory is full and could not be consolidated just now. The user can review "
                    "and delete memories in the app.")
        scope.note(consolidated, full.text)
        return (f"Saved. To stay within the memory's budget, {consolidated.replaced} memories were consolidated "
                f"into {len(consolidated.memories)}.")
    except ProblemError as e:
        raise _refused(e) from None
    scope.note(change)
    if change.action == "unchanged":
        return f"Already remembered as [{short_id(change.memory['id'])}]: nothing new saved."
    return f"Saved to memory as [{short_id(change.memory['id'])}]."


def update_memory(memory_id: str, text: str) -> str:
    """Change what one of your memories of the user says (when a remembered fact has changed).

    Args:
        memory_id: The memory's id, as shown in square brackets in what you remember.
        text: The memory's new text.

    Returns:
        What was changed.
    """
    scope = _scope()
    try:
        change = changes.update(memory_id, text, user_id=scope.user_id, by_model=True)
    except changes.MemoryOff:
        return OFF
    except ProblemError as e:
        raise _refused(e) from None
    scope.note(change)
    return f"Memory [{short_id(change.memory['id'])}] now says: {change.memory['text']}"


def forget_memory(memory_id: str) -> str:
    """Forget one of your memories of the user (when they ask you to forget something).

    Args:
        memory_id: The memory's id, as shown in square brackets in what you remember.

    Returns:
        What was forgotten.
    """
    scope = _scope()
    try:
        change = changes.forget(memory_id, user_id=scope.user_id, by_model=True)
    except changes.MemoryOff:
        return OFF
    except ProblemError as e:
        raise _refused(e) from None
    scope.note(change)
    return f"Forgotten: [{short_id(change.memory['id'])}] {change.memory['text']}"


TOOLS = (remember, update_memory, forget_memory)


# ---- consolidation

@lru_cache(maxsize=1)
def _consolidator() -> Agent:
    return Agent(id=MEMORY_AGENT, name=MEMORY_AGENT, model=claude(CONSOLIDATION_MODEL),
                 instructions=list(CONSOLIDATION_INSTRUCTIONS), telemetry=False, markdown=False)


def consolidation_prompt(texts: list[str]) -> str:
    """What the consolidating model is asked: the memories into at most half the limits (so the next
    consolidation is many memories away)."""
    s = get_settings()
    count = max(1, s.memory_max_count // 2)
    total = max(s.memory_max_chars, (s.memory_max_tokens // 2) * CHARS_PER_TOKEN - len(RECALL_OPENING)
                - (SHORT_ID_CHARS + 4) * count)
    return CONSOLIDATION_PROMPT.format(count=count, chars=s.memory_max_chars, total=total,
                                       memories="\n".join(f"- {t}" for t in texts))


def parse_consolidation(answer: str) -> list[str] | None:
    """The memories of the consolidating model's answer (its ``- `` lines), deduplicated; None when
    the answer is unusable (no memory, a line a memory cannot hold, past the limits)."""
    s = get_settings()
    texts: dict[str, str] = {}
    for raw in answer.splitlines():
        match = _BULLET.match(raw)
        if match is None:
            continue
        try:
            text = clean_text(match.group(1), s.memory_max_chars, words_only=True)
        except ProblemError:
            return None
        texts.setdefault(fact_key(text), text)
    result = list(texts.values())
    if not result or not within_limits(result, max_tokens=s.memory_max_tokens, max_count=s.memory_max_count):
        return None
    return result


def consolidate(scope: MemoryScope, stored: list[dict[str, Any]], text: str) -> MemoryChange | None:
    """Consolidate the ``stored`` memories with the new ``text`` (see the module); None when nothing
    was replaced (the call failed, its answer did not fit, or the memories changed meanwhile). What
    the call was billed is stored either way."""
    run_id = uuid7()
    prompt = consolidation_prompt([*(m["text"] for m in stored), text])
    try:
        output = _consolidator().run(input=prompt, stream=False, run_id=str(run_id),
                                     session_id=str(scope.session_id))
    except Exception:  # noqa: BLE001 - nothing is saved; the model is told
        log.exception("memory consolidation of %d memories failed", len(stored) + 1)
        return None
    replies = [m for m in (output.messages or []) if m.role == "assistant"]
    answer = output.content if isinstance(output.content, str) else ""
    failed = "error" in str(getattr(output, "status", "")).lower()
    texts = None if failed else parse_consolidation(answer)
    record = RunRecord(run_uuid=run_id, agent_name=MEMORY_AGENT, model_id=CONSOLIDATION_MODEL,
                       messages=[RecordedMessage(m, usage_of(m.metrics)) for m in replies])
    if texts is None:
        log.warning("memory consolidation gave no usable memories (%d replies)", len(replies))
        record.error = RunError("memory-consolidation", "the consolidated memories were unusable; nothing changed")
    run, rows = priced_rows(record, session_id=scope.session_id, costs=scope.costs, now=datetime.now(timezone.utc))

    def store_run(conn) -> None:
        turn_rows.insert_run(conn, run_id=run_id, session_id=scope.session_id, agent_name=MEMORY_AGENT,
                             parent_run_id=scope.run_id, status="running")
        turn_rows.finish_run(conn, **run.run_row())
        turn_rows.insert_messages(conn, rows)

    if texts is None:
        if rows:  # billed, unusable: stored and charged all the same
            with db.connection() as conn, conn.transaction():
                store_run(conn)
            scope.stored_runs.append(run)
        return None
    change = changes.replace(scope.user_id, stored, texts, session_id=scope.session_id, run_id=run_id,
                             also=store_run)
    scope.stored_runs.append(run)
    if change is None:
        log.info("memories changed during their consolidation: nothing replaced")
    return change
