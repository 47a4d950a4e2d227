"""What the code defines: agents (``agents/``), teams, their tools and specs; and their record in
the database with the pinned prices (``sync_catalog``, ``price_ids``).

No agno import: every function (and the migrate step) can sync the catalog cheaply.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID

from chatcore import db
from chatcore.catalog.agents import agent_specs
from chatcore.catalog.specs import Spec, TeamSpec
from chatcore.catalog.teams import team_specs
from chatcore.money.prices import default_price_book
from chatcore.store import catalog


@lru_cache(maxsize=1)
def price_ids() -> dict[str, UUID]:
    """price_key -> prices.id of the pinned price version, recorded once per process."""
    book = default_price_book()
    with db.connection() as conn:
        return catalog.sync_prices(conn, book.price_rows(), book.version)


def participants(spec: Spec) -> tuple[Spec, ...]:
    """The specs whose model calls a session's turn may make: an agent's own; a team's leader, then its
    members (each with its own model, thinking budget and web search)."""
    if isinstance(spec, TeamSpec):
        agents = agent_specs()
        return (spec, *(agents[m] for m in spec.members))
    return (spec,)


def sync_catalog() -> None:
    """Record the agents and teams defined in code and the pinned prices in the database."""
    with db.connection() as conn:
        catalog.sync_agents(conn, [s.row() for s in agent_specs().values()])
        catalog.sync_teams(conn, [s.row() for s in team_specs().values()])
    price_ids()
