"""A turn of a session: store the user's message, run the agent or team, stream its events, store
and price the result.

``open_turn`` is the entry point: it begins the turn (raising the problem, 4xx/503, before any
byte is streamed) and returns the turn's SSE stream, live or followed from what is stored. The
order is what keeps nothing lost:

1. ``begin``: one transaction locks the session, answers a retried ``client_turn_id`` from what is
   stored, refuses a second concurrent turn, uploads large images, and stores the run (``running``)
   and the user's message; the history is loaded in the same statement;
2. ``run``: the conversation (``agent``/``team``, from the ``registry``) runs in its own task, so a
   client that disconnects does not stop it; ``tracking`` follows each run through agno's events,
   ``turn_events`` writes the turn's events in batches (any instance can resume the stream) and
   reads a stop request;
3. ``finish``: one transaction stores the turn's new messages, each priced, and the runs' outcome;
   the final event, the run row and the metrics all come from one ``TurnOutcome`` (``outcome``).

The steps hand each other the turn as plain data (``turn``: ``TurnInput``, ``PreparedTurn``,
``KnownTurn``), so none of them imports another to name it.

The package loads lazily: ``turns.turn_events`` and ``turns.outcome`` never import agno (the events
function follows a turn without it); ``open_turn`` and the rest load agno when first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ("TurnInput", "PreparedTurn", "TurnOutcome", "TurnStream", "open_turn")


def __getattr__(name: str) -> Any:
    if name in ("TurnInput", "PreparedTurn"):
        from chatcore.turns import turn

        return getattr(turn, name)
    if name in ("TurnStream", "open_turn"):
        from chatcore.turns import run

        return getattr(run, name)
    if name == "TurnOutcome":
        from chatcore.turns.outcome import TurnOutcome

        return TurnOutcome
    raise AttributeError(f"module 'chatcore.turns' has no attribute {name!r}")
