"""Cost test data written straight to Postgres: fresh databases, users, sessions, turns and priced rows.

Rows look like the ones the turn path stores: UUIDv7 ids (of the time the row was created),
assistant rows priced with the pinned price table and the USD/ZAR rate in effect, run totals as
turns.py writes them (a team turn's run totals its own and its member runs' rows).
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from chatcore.store import catalog as catalog_rows, sessions as session_rows
from chatcore.money.prices import TokenUsage, default_price_book
from tests.support import pg

ROOT = Path(__file__).resolve().parents[2]
MONEY = Decimal("1e-10")
SEED_FX_ID = UUID("01800000-0000-7000-8000-000000000001")  # the 18.00 default of 0001_init.sql
SONNET, HAIKU, OLD_SONNET = "claude-sonnet-5-5", "claude-haiku-5-5", "claude-sonnet-4-5"


def uuid7_at(at: datetime) -> UUID:
    """A UUIDv7 of the millisecond ``at``, as uuid6.uuid7() would have made it then."""
    ms = int(at.timestamp() * 1000)
    value = (ms << 80) | secrets.randbits(76)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0xC << 60)) | (0x8 << 60)  # RFC 9562 variant
    return UUID(int=value)


def connect(url: str) -> psycopg.Connection:
    return pg.connect(url, autocommit=True, row_factory=dict_row)


def create_fresh_database(stack, prefix: str) -> str:
    """A new database on the test server with every migration applied; returns its URL."""
    from chatcore.migrate import apply, default_dir

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    if stack.postgres is not None:
        url = stack.postgres.create_database(name)
    else:  # DATABASE_URL given: a sibling database on the same server
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        base = stack.env["DATABASE_URL"]
        with pg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(base, dbname=name)
        assert conninfo_to_dict(url)["dbname"] == name
    with pg.connect(url, autocommit=True) as conn:
        apply(conn, default_dir())
    return url


def drop_database(stack, url: str) -> None:
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = conninfo_to_dict(url)["dbname"]
    admin = stack.postgres.admin_url if stack.postgres is not None else make_conninfo(url, dbname="postgres")
    with pg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_cli(module: str, *args: str, database_url: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    if check:
        assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def seed_catalog(conn: psycopg.Connection) -> dict[str, UUID]:
    """The agents and teams defined in code and the pinned prices; returns price_key -> prices.id."""
    from chatcore.catalog.agents import agent_specs
    from chatcore.catalog.teams import team_specs

    catalog_rows.sync_agents(conn, [s.row() for s in agent_specs().values()])
    catalog_rows.sync_teams(conn, [s.row() for s in team_specs().values()])
    book = default_price_book()
    return catalog_rows.sync_prices(conn, book.price_rows(), book.version)


def add_user(conn: psycopg.Connection, sub: str | None = None) -> UUID:
    return session_rows.ensure_user(conn, sub or f"cost-{uuid.uuid4()}")


def add_session(conn: psycopg.Connection, user_id: UUID, *, agent: str | None = None, team: str | None = None,
                at: datetime | None = None) -> UUID:
    at = at or datetime.now(UTC)
    sid = uuid7_at(at)
    conn.execute(
        "INSERT INTO sessions (id, user_id, agent_id, team_id, created_at, updated_at) VALUES "
        "(%(id)s, %(user_id)s, (SELECT id FROM agents WHERE name = %(agent)s), "
        "(SELECT id FROM teams WHERE name = %(team)s), %(at)s, %(at)s)",
        {"id": sid, "user_id": user_id, "agent": agent, "team": team, "at": at})
    return sid


@dataclass
class Call:
    """One model call of a run: its tokens and model."""

    model_id: str
    usage: TokenUsage


@dataclass
class TurnSpec:
    session_id: UUID
    started_at: datetime
    calls: list[Call]
    member_calls: list[Call] = field(default_factory=list)
    member_name: str = "calculator"
    status: str = "completed"
    stored_at: datetime | None = None
    """When the turn's rows were stored (default: a few seconds after the start)."""
    fresh_ids: bool = False
    """Ids of now (a late, back-dated insert) instead of ids of the row's time."""
    agent_name: str = "assistant"


@dataclass
class StoredTurn:
    run_id: UUID
    member_run_id: UUID | None
    usd: Decimal
    zar: Decimal
    rows: int


def _fx(conn: psycopg.Connection, day: date) -> dict:
    return conn.execute(
        "SELECT id, rate, effective_date FROM fx_rates WHERE base = 'USD' AND quote = 'ZAR' "
        "AND effective_date <= %s ORDER BY effective_date DESC LIMIT 1", (day,)).fetchone()


def _insert_messages(conn: psycopg.Connection, session_id: UUID, rows: list[dict], fx: dict) -> None:
    """The messages of a turn; those with a model carry the exchange rate ``fx``."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO chat_events (id, session_id, run_id, role, agent_name, model_provider_slug, model_id, "
            "message_parts, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, "
            "cost_in_rands, price_id, fx_rate_id, fx_rate, fx_rate_date, created_at) VALUES (%(id)s, "
            "%(session_id)s, %(run_id)s, %(role)s, %(agent_name)s, %(slug)s, %(model_id)s, %(parts)s, "
            "%(input_tokens)s, %(output_tokens)s, %(cache_read_tokens)s, %(cache_write_tokens)s, %(usd)s, "
            "%(zar)s, %(price_id)s, %(fx_id)s, %(fx_rate)s, %(fx_date)s, %(created_at)s)",
            [{**r, "session_id": session_id, "slug": "anthropic" if r["model_id"] else None,
              "parts": Jsonb({"role": r["role"], "content": "generated"}),
              "input_tokens": r["usage"].input_tokens, "output_tokens": r["usage"].output_tokens,
              "cache_read_tokens": r["usage"].cache_read_tokens,
              "cache_write_tokens": r["usage"].cache_write_tokens,
              "fx_id": fx["id"] if r["model_id"] else None, "fx_rate": fx["rate"] if r["model_id"] else None,
              "fx_date": fx["effective_date"] if r["model_id"] else None} for r in rows])


def insert_turn(conn: psycopg.Connection, price_ids: dict[str, UUID], spec: TurnSpec) -> StoredTurn:
    """A turn as turns.py stores it: user row at the start, the rest when it ends, priced; run totals."""
    book = default_price_book()
    stored_at = spec.stored_at or spec.started_at + timedelta(seconds=3)
    new_id = (lambda at: uuid7()) if spec.fresh_ids else uuid7_at
    fx = _fx(conn, stored_at.astimezone(UTC).date())
    run_id = new_id(spec.started_at)
    member_run_id = new_id(stored_at) if spec.member_calls else None
    with conn.transaction():
        conn.execute(
            "INSERT INTO runs (id, session_id, agent_name, status, started_at, finished_at) "
            "VALUES (%s, %s, %s, 'running', %s, NULL)", (run_id, spec.session_id, spec.agent_name, spec.started_at))
        rows = [dict(id=new_id(spec.started_at), run_id=run_id, role="user", agent_name=None, model_id=None,
                     created_at=spec.started_at, usage=TokenUsage(), usd=Decimal(0), zar=Decimal(0), price_id=None)]
        totals: dict[UUID, list] = {run_id: [TokenUsage(), Decimal(0), Decimal(0)]}
        if member_run_id:
            totals[member_run_id] = [TokenUsage(), Decimal(0), Decimal(0)]
        for run, name, calls in ((run_id, spec.agent_name, spec.calls),
                                 (member_run_id, spec.member_name, spec.member_calls)):
            for call in calls:
                priced = book.cost_usd(call.model_id, call.usage, stored_at)
                usd = priced.usd.quantize(MONEY)
                zar = (usd * fx["rate"]).quantize(MONEY)
                rows.append(dict(id=new_id(stored_at), run_id=run, role="assistant", agent_name=name,
                                 model_id=call.model_id, created_at=stored_at, usage=call.usage, usd=usd, zar=zar,
                                 price_id=price_ids[priced.price.price_key]))
                rows.append(dict(id=new_id(stored_at), run_id=run, role="tool", agent_name=name, model_id=None,
                                 created_at=stored_at, usage=TokenUsage(), usd=Decimal(0), zar=Decimal(0),
                                 price_id=None))
                t = totals[run]
                t[0], t[1], t[2] = t[0] + call.usage, t[1] + usd, t[2] + zar
        if member_run_id:
            u, usd, zar = totals[member_run_id]
            conn.execute(
                "INSERT INTO runs (id, session_id, parent_run_id, agent_name, status, started_at, finished_at, "
                "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands) "
                "VALUES (%s, %s, %s, %s, 'completed', %s, %s, %s, %s, %s, %s, %s, %s)",
                (member_run_id, spec.session_id, run_id, spec.member_name, stored_at, stored_at, u.input_tokens,
                 u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, usd, zar))
        _insert_messages(conn, spec.session_id, rows, fx)
        total = sum((t[0] for t in totals.values()), TokenUsage())
        usd = sum((t[1] for t in totals.values()), Decimal(0))
        zar = sum((t[2] for t in totals.values()), Decimal(0))
        if spec.status != "running":
            conn.execute(
                "UPDATE runs SET status = %s, finished_at = %s, input_tokens = %s, output_tokens = %s, "
                "cache_read_tokens = %s, cache_write_tokens = %s, cost_usd = %s, cost_in_rands = %s, "
                "error_code = %s WHERE id = %s",
                (spec.status, stored_at, total.input_tokens, total.output_tokens, total.cache_read_tokens,
                 total.cache_write_tokens, usd, zar, "model-error" if spec.status == "failed" else None, run_id))
    return StoredTurn(run_id, member_run_id, usd, zar, len(rows))


def random_usage(rng: random.Random) -> TokenUsage:
    big = rng.random() < 0.05  # now and then a long-context request (tier prices)
    return TokenUsage(
        input_tokens=rng.randint(150_000, 260_000) if big else rng.randint(1, 4000),
        output_tokens=rng.randint(1, 2500),
        cache_read_tokens=rng.choice([0, 0, rng.randint(1, 40_000)]),
        cache_write_tokens=rng.choice([0, 0, 0, rng.randint(1, 8000)]),
    )


@dataclass
class Month:
    first_day: date
    last_day: date
    users: list[UUID]
    turns: list[tuple[TurnSpec, StoredTurn]]


def generate_month(conn: psycopg.Connection, price_ids: dict[str, UUID], first_day: date, *, days: int = 31,
                   users: int = 4, seed: int = 7) -> Month:
    """Several users, each with an agent session and a team session, turns on every day of the range.

    Varied on purpose: two models for the agent (it moved from claude-sonnet-4-5 to 5-5 mid-month),
    the team's leader and members on different models, failed turns with and without priced calls,
    turns that start before midnight and store after it.
    """
    rng = random.Random(seed)
    month = Month(first_day, first_day + timedelta(days=days - 1), [], [])
    for u in range(users):
        user_id = add_user(conn)
        month.users.append(user_id)
        start = datetime.combine(first_day, time(0), tzinfo=UTC)
        agent_session = add_session(conn, user_id, agent="assistant", at=start)
        team_session = add_session(conn, user_id, team="planner", at=start)
        for d in range(days):
            day_start = start + timedelta(days=d)
            for _ in range(rng.randint(0, 4)):
                started = day_start + timedelta(seconds=rng.randint(0, 86_399))
                stored = started + timedelta(seconds=rng.randint(1, 90))
                status = "failed" if rng.random() < 0.12 else "completed"
                if rng.random() < 0.4:
                    calls = [Call(SONNET, random_usage(rng))]
                    members = [Call(HAIKU, random_usage(rng)) for _ in range(rng.randint(1, 2))]
                    spec = TurnSpec(team_session, started, calls, members, rng.choice(["calculator", "converter"]),
                                    status, stored, agent_name="planner")
                else:
                    model = OLD_SONNET if d < days // 2 else SONNET
                    calls = [Call(model, random_usage(rng)) for _ in range(rng.randint(1, 3))]
                    spec = TurnSpec(agent_session, started, calls, status=status, stored_at=stored)
                if status == "failed" and rng.random() < 0.5:
                    spec.calls, spec.member_calls = [], []  # failed on its first model request
                month.turns.append((spec, insert_turn(conn, price_ids, spec)))
    return month
