"""A turn of a session: store the user's message, run the agent or team, stream its events, store
and price the result.

``open_turn`` is the entry point: it begins the turn (raising the problem, 4xx/503, before any
byte is streamed) and returns the turn's SSE frames, live or answered from what is stored. The
order is what keeps nothing lost:

1. ``begin``: one transaction locks the session, answers a retried ``client_turn_id`` from what is
   stored, refuses a second concurrent turn, uploads large images, and stores the run (``running``)
   and the user's message; the history is loaded in the same statement;
2. ``run``: the conversation (``agent``/``team``, from the ``registry``) runs in its own task, so a
   client that disconnects does not stop it; ``tracking`` follows its events;
3. ``outcome``: one transaction stores the turn's new messages, each priced, and the runs' outcome;
   the final event, the run row and the metrics all come from one ``TurnOutcome``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from chatcore.turns.begin import PreparedTurn, TurnInput, begin_turn
from chatcore.turns.outcome import TurnOutcome
from chatcore.turns.run import replay, stream_turn

__all__ = ("TurnInput", "PreparedTurn", "TurnOutcome", "open_turn")


async def open_turn(turn: TurnInput,
                    wait_for_disconnect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    """Begin ``turn`` and return its SSE frames (see the module)."""
    prepared = await asyncio.to_thread(begin_turn, turn)
    if isinstance(prepared, TurnOutcome):
        return replay(prepared)
    return stream_turn(prepared, wait_for_disconnect)
