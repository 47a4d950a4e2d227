"""Older turns compacted into the session's summary, never silently dropped.

Ahead of need: when the history outgrows ``EARLY_SHARE`` (three quarters) of the context's token
budget (``turns.context``), the turns that would fall out of that smaller window, and with them
the oldest turns still in, until the rest uses at most a quarter of the token budget, are folded into the
session's summary by a model call (``COMPACTION_MODEL``, a cheap one). The summary is extended in
steps: at most once every several turns, so the request's prefix (instructions, summary, recent
turns) stays byte-stable in between and the prompt cache reads it. The model's input is then:
instructions, the summary, the recent turns.

Off the critical path: the turn that starts a compaction does not wait for it. Its own request is
built as before (the summary so far and every turn that fits the whole budget: the folded turns
still fit it, since the fold started at three quarters), and the summarising call runs in a
worker thread beside the turn's answer, started once the model's first event is out (``turns.run``);
the turn waits for it only before it is stored, after its last event but the final one. So the compaction turn's first answer byte comes
as fast as any other turn's; the next turn reads the new summary. When a history jumps past the
whole budget at once (a very long message), this turn's request leaves the oldest turns out, as
the context builder always does, and the summary that covers them comes with it for the next turn.

Never two compactions of one session at once: a compaction runs inside its turn, and a session has
at most one running turn (a second one is refused with 409 while the first runs, under the users-row
lock: ``turns.begin``); its turn is stored only after the compaction has ended.

The call is priced and stored like any other: a ``compaction`` run of the turn that made it, with
one assistant row holding the summary and its tokens and cost, in the same transaction as the
turn; the rollup, budgets and ``/usage`` count it, ``GET /sessions/{id}/messages`` does not list it.
Stored messages are never changed. A compaction that fails costs the turn nothing: the turn is
stored as it ran, and the next turn tries again.

Why our own: Anthropic's server-side compaction is a beta (``compact-2026-01-12``) that triggers at
50k tokens and returns a block the client must keep and resend, which agno does not support; agno's
``CompressionManager`` compresses one run's tool results and context, and keeps nothing across our
own storage. A summary row per session is simple, priced like everything else, and survives any
model or framework change.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

from agno.agent import Agent
from agno.models.message import Message

from chatcore.money.prices import TokenUsage
from chatcore.turns.claude import claude
from chatcore.turns.context import Budgets, Context, group_turns, message_tokens
from chatcore.turns.tracking import RecordedMessage, RunRecord, usage_of

log = logging.getLogger(__name__)

COMPACTION_MODEL = "claude-haiku-5-5"
COMPACTION_AGENT = "compaction"
INSTRUCTIONS = (
    "You summarise conversations between a user and an assistant in a mobile chat app.",
    "Update the summary with the new part of the conversation. Keep every fact, name, number, date, "
    "decision, preference and open question the user may refer to later; drop small talk.",
    "Write plain prose, at most 300 words, in the user's language. Answer with the summary only.",
)
SUMMARY_OPENING = "[Summary of the earlier conversation, which is no longer shown in full]"
SUMMARY_ACK = "Understood: I will use this summary of our earlier conversation."
# Each line of the transcript that the summariser reads is cut to this many characters.
LINE_CHARS = 4_000
# A compaction starts when the history no longer fits this share of the token budget (ahead of need),
# and folds the oldest turns until the rest uses at most KEEP_SHARE of it: the next one is half the
# budget of new turns away, so the summary changes (and the cached prefix with it) only in steps.
EARLY_SHARE = 0.75
KEEP_SHARE = 0.25


@dataclass
class Compaction:
    """A summary made by this turn: what to store, and the model call that made it."""

    summary: str
    # the first stored message the summary does not cover (a user message: its row's id is its own):
    # the summary covers the session's rows before it (``store.turns.save_summary``)
    covers_before: UUID
    turns: int
    record: RunRecord


@lru_cache(maxsize=1)
def _summariser() -> Agent:
    return Agent(id=COMPACTION_AGENT, name=COMPACTION_AGENT, model=claude(COMPACTION_MODEL),
                 instructions=list(INSTRUCTIONS), telemetry=False, markdown=False)


def summary_messages(summary: str) -> list[Message]:
    """The summary as the first exchange of the model's history (its copy only)."""
    return [Message(role="user", content=f"{SUMMARY_OPENING}\n\n{summary}", from_history=True),
            Message(role="assistant", content=SUMMARY_ACK, from_history=True)]


def transcript(turns: list[list[Message]]) -> str:
    lines = []
    for turn in turns:
        for m in turn:
            text = m.content if isinstance(m.content, str) else ""
            if m.role == "user":
                photos, documents = len(m.images or []), [f.name or "a PDF" for f in m.files or []]
                lines.append(f"User: {text[:LINE_CHARS]}" + (f" [{photos} photo(s)]" if photos else "")
                             + (f" [PDF: {', '.join(documents)}]" if documents else ""))
            elif m.role == "assistant" and text:
                lines.append(f"Assistant: {text[:LINE_CHARS]}")
            elif m.role == "tool":
                lines.append(f"Tool {m.tool_name or ''}: {str(m.content)[:200]}")
    return "\n".join(lines)


def turns_to_fold(history: list[Message], context: Context, budgets: Budgets) -> int:
    """How many of the oldest turns to fold into the summary: those the context left out, and then
    the oldest kept ones until the rest uses at most ``KEEP_SHARE`` of the token budget (so the next
    steps are several turns away)."""
    turns = group_turns(history)
    fold = context.turns_left_out
    if fold == 0:
        return 0
    remaining = [m for t in turns[fold:] for m in t]
    used = sum(message_tokens(m) for m in remaining)
    while fold < len(turns) - 1 and used > budgets.max_tokens * KEEP_SHARE:
        used -= sum(message_tokens(m) for m in turns[fold])
        fold += 1
    return fold


@dataclass
class CompactionPlan:
    """A compaction a turn starts (``turns.begin``) and runs beside its model call (``turns.run``)."""

    summary: str | None
    turns: list[list[Message]]
    covered: int
    covers_before: UUID  # the first message it leaves out: the next kept turn's (or this turn's) user message
    run_id: UUID
    session_id: str
    user_id: str

    def run(self) -> Compaction | None:
        return compact(summary=self.summary, turns=self.turns, covered=self.covered, run_id=self.run_id,
                       session_id=self.session_id, user_id=self.user_id, covers_before=self.covers_before)


def early(budgets: Budgets) -> Budgets:
    """The budgets at which a compaction starts: ``EARLY_SHARE`` of the tokens, the same images and bytes."""
    return Budgets(max(int(budgets.max_tokens * EARLY_SHARE), 1), budgets.max_images, budgets.max_bytes)


def compact(*, summary: str | None, turns: list[list[Message]], covered: int, run_id: UUID,
            session_id: str, user_id: str, covers_before: UUID) -> Compaction | None:
    """Fold ``turns`` (oldest first) into ``summary``; None when the model call failed (the turns are
    then left out this time, and the next turn tries again)."""
    prompt = (f"The summary so far:\n{summary}\n\n" if summary else "") + \
        f"The next part of the conversation:\n{transcript(turns)}\n\nWrite the updated summary."
    try:
        output = _summariser().run(input=prompt, stream=False, run_id=str(run_id), session_id=session_id,
                                   user_id=user_id)
    except Exception:  # noqa: BLE001 - the turn goes on without a new summary
        log.exception("compaction of %d turn(s) failed", len(turns))
        return None
    replies = [m for m in (output.messages or []) if m.role == "assistant"]
    text = (output.content if isinstance(output.content, str) else "") or ""
    status = str(getattr(output, "status", "")).lower()
    if not replies or not text.strip() or "error" in status:
        log.warning("compaction of %d turn(s) gave no summary (%s)", len(turns), status)
        usage = sum((usage_of(m.metrics) for m in replies), TokenUsage())
        if not usage:
            return None
        # billed but unusable: stored (and charged) all the same, no summary saved
        return Compaction("", UUID(int=0), 0, _record(run_id, replies))
    return Compaction(text.strip(), covers_before, covered + len(turns), _record(run_id, replies))


def _record(run_id: UUID, replies: list[Message]) -> RunRecord:
    return RunRecord(run_uuid=run_id, agent_name=COMPACTION_AGENT, model_id=COMPACTION_MODEL,
                     messages=[RecordedMessage(m, usage_of(m.metrics)) for m in replies])


def summary_tokens(summary: str | None) -> int:
    if not summary:
        return 0
    return sum(message_tokens(m) for m in summary_messages(summary)) + math.ceil(len(SUMMARY_OPENING) / 4)
