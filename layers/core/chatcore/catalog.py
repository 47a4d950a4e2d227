"""What the code defines, recorded in the database: agents, teams, members and pinned prices.

No agno import: every function (and the migrate step) can sync the catalog cheaply.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID

from chatcore import db, storage
from chatcore.agents import agent_specs
from chatcore.pricing import default_price_book
from chatcore.teams import team_specs


@lru_cache(maxsize=1)
def price_ids() -> dict[str, UUID]:
    """price_key -> prices.id of the pinned price version, recorded once per process."""
    book = default_price_book()
    with db.connection() as conn:
        return storage.sync_prices(conn, book.price_rows(), book.version)


def sync_catalog() -> None:
    """Record the agents and teams defined in code and the pinned prices in the database."""
    with db.connection() as conn:
        storage.sync_agents(conn, [s.row() for s in agent_specs().values()])
        storage.sync_teams(conn, [s.row() for s in team_specs().values()])
    price_ids()
