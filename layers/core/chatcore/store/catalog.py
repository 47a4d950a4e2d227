"""What the code defines, as rows: agents, teams and their members, pinned prices."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from uuid6 import uuid7


def _upsert_definition(table: str) -> str:
    # table is "agents" or "teams" (fixed text); an unchanged definition writes nothing
    return f"""
INSERT INTO {table} (id, name, description, model_provider_slug, model_id, definition, active, updated_at)
VALUES (%(id)s, %(name)s, %(description)s, %(model_provider_slug)s, %(model_id)s, %(definition)s, true, now())
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description,
    model_provider_slug = EXCLUDED.model_provider_slug, model_id = EXCLUDED.model_id,
    definition = EXCLUDED.definition, active = true, updated_at = now()
WHERE ({table}.description, {table}.model_provider_slug, {table}.model_id, {table}.definition, {table}.active)
   IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.model_provider_slug, EXCLUDED.model_id, EXCLUDED.definition, true)
"""


UPSERT_AGENT = _upsert_definition("agents")
UPSERT_TEAM = _upsert_definition("teams")
TEAM_ID = "SELECT id FROM teams WHERE name = %(name)s"
DELETE_TEAM_MEMBERS = "DELETE FROM team_members WHERE team_id = %(team_id)s"
INSERT_TEAM_MEMBER = """
INSERT INTO team_members (team_id, agent_id, position) SELECT %(team_id)s, id, %(position)s FROM agents WHERE name = %(name)s
"""
DEACTIVATE_AGENTS = "UPDATE agents SET active = false WHERE active AND NOT (name = ANY(%(names)s))"
DEACTIVATE_TEAMS = "UPDATE teams SET active = false WHERE active AND NOT (name = ANY(%(names)s))"

UPSERT_PRICE = """
INSERT INTO prices (id, price_key, version, provider, model, effective_from, entry, source)
VALUES (%(id)s, %(price_key)s, %(version)s, %(provider)s, %(model)s, %(effective_from)s, %(entry)s, %(source)s)
ON CONFLICT (price_key, version) DO NOTHING
"""

SELECT_PRICE_IDS = "SELECT price_key, id FROM prices WHERE version = %(version)s"

LIST_AGENTS = """
SELECT name, description, model_provider_slug, model_id, definition FROM agents WHERE active ORDER BY name
"""

LIST_TEAMS = """
SELECT t.name, t.description, t.model_provider_slug, t.model_id, t.definition,
       coalesce(array_agg(a.name ORDER BY tm.position) FILTER (WHERE a.name IS NOT NULL), '{}') AS members
FROM teams t LEFT JOIN team_members tm ON tm.team_id = t.id LEFT JOIN agents a ON a.id = tm.agent_id
WHERE t.active GROUP BY t.id ORDER BY t.name
"""


def _definition_params(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if k != "members"}, "id": uuid7(), "definition": Jsonb(row["definition"])}


def sync_agents(conn: psycopg.Connection, agents: list[dict[str, Any]]) -> None:
    """Upsert the agents defined in code; agents no longer defined are marked inactive."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(UPSERT_AGENT, [_definition_params(a) for a in agents])
        conn.execute(DEACTIVATE_AGENTS, {"names": [a["name"] for a in agents]})


def sync_teams(conn: psycopg.Connection, teams: list[dict[str, Any]]) -> None:
    """Upsert the teams defined in code and their members; teams no longer defined become inactive."""
    with conn.transaction():
        for team in teams:
            conn.execute(UPSERT_TEAM, _definition_params(team))
            team_id = conn.execute(TEAM_ID, {"name": team["name"]}).fetchone()["id"]
            conn.execute(DELETE_TEAM_MEMBERS, {"team_id": team_id})
            with conn.cursor() as cur:
                cur.executemany(INSERT_TEAM_MEMBER, [{"team_id": team_id, "position": i, "name": name}
                                                     for i, name in enumerate(team["members"])])
        conn.execute(DEACTIVATE_TEAMS, {"names": [t["name"] for t in teams]})


def sync_prices(conn: psycopg.Connection, entries: list[dict[str, Any]], version: str) -> dict[str, UUID]:
    """Record the pinned prices of ``version``; returns price_key -> prices.id."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(UPSERT_PRICE, [
                {**e, "id": uuid7(), "version": version, "entry": Jsonb(json.loads(json.dumps(e["entry"])))}
                for e in entries
            ])
        rows = conn.execute(SELECT_PRICE_IDS, {"version": version}).fetchall()
    return {r["price_key"]: r["id"] for r in rows}


def list_agents(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.execute(LIST_AGENTS).fetchall()


def list_teams(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.execute(LIST_TEAMS).fetchall()
