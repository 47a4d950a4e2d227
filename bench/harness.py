"""The benchmark's world: the local stack, our API, AgentOS over Agno's PostgresDb, bare agents.

Everything runs in this one process, as the tests do: Postgres (a throwaway cluster, or
``DATABASE_URL``), the moto S3 server and the instant stand-in model are started by
``local.stack.start_stack(force_standin=True)``; our API (``local.server``) and AgentOS are served
by uvicorn in threads; the benchmark's own async work (bare ``agent.arun``, Agno ``PostgresDb``
turns) runs on one event loop of the main thread. Each side has its own Claude model object, so
no HTTP client crosses event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.trace import RoundTrips
from local.ports import free_port

AGENT = "assistant"
OUR_TABLES = ("chat_events", "runs", "sessions")
AGNO_TABLES = ("ai.agno_sessions", "ai.agno_runs")



def say(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


@dataclass
class Breakdown:
    """Server-side time of the two storage steps of our turn, and of the image work (S3 upload,
    S3 read of a history photo), observed in this process only."""

    begin_ms: list[float] = field(default_factory=list)
    store_ms: list[float] = field(default_factory=list)
    media: list[tuple[str, float]] = field(default_factory=list)  # (what, ms)


def standin_without_nagle() -> None:
    """Set TCP_NODELAY on the stand-in's connections (in this process only).

    The stand-in writes each SSE event with its own small ``send``; with Nagle's algorithm on, the
    event after the first waits for the client's delayed ACK, about 40 ms per model call (measured:
    44 ms per call as shipped, 1.7 ms with TCP_NODELAY). That is a property of the stand-in's socket,
    not of the code under test, and would hide every figure below 40 ms behind it; the replies
    themselves (the stand-in's default behaviour) are unchanged.
    """
    from local import anthropic_standin

    handler = anthropic_standin._Handler
    if getattr(handler, "_bench_nodelay", False):
        return
    setup = handler.setup

    def setup_nodelay(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup(self)

    handler.setup = setup_nodelay
    handler._bench_nodelay = True


class Harness:
    def __init__(self) -> None:
        os.environ.pop("ANTHROPIC_API_KEY", None)
        from local.stack import start_stack

        standin_without_nagle()
        logging.getLogger("agno").setLevel(logging.WARNING)

        say("bench: starting the local stack (Postgres, moto S3, the instant stand-in model)")
        self.stack = start_stack(database_name="bench", quiet=True, force_standin=True).apply()
        os.environ["DB_POOL_MAX"] = "1"  # the production default: one connection per sandbox
        from chatcore.config import get_settings

        get_settings.cache_clear()
        self.database_url = self.stack.env["DATABASE_URL"]
        self.loop = asyncio.new_event_loop()
        self._api = None
        self._agno = None
        self._agno_proxied = None
        self._proxy = None
        self._bare = None
        self.breakdown = Breakdown()
        self._conn = None

    # ---- plumbing

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def _timed_run(self, what: str, start: Callable[[], AsyncIterator[Any]]) -> float:
        """Wall time (ms) of the streamed agno run ``start()`` begins, read to its last event, which must be
        RunCompleted (else a RuntimeError naming ``what``)."""
        async def go() -> float:
            t = time.perf_counter()
            last = None
            async for ev in start():
                last = ev
            elapsed = (time.perf_counter() - t) * 1000
            if getattr(last, "event", None) != "RunCompleted":
                raise RuntimeError(f"{what} did not complete: {getattr(last, 'event', last)}")
            return elapsed

        return self.run(go())

    def conn(self):
        """A psycopg connection of the benchmark itself (dict rows, autocommit), as db.connect() makes."""
        if self._conn is None or self._conn.closed:
            from chatcore import db

            self._conn = db.connect(self.database_url)
        return self._conn

    def postgres_version(self) -> str:
        return self.conn().execute("SELECT version() AS v").fetchone()["v"]

    def reset_standin(self) -> None:
        """The stand-in records every request; forget them so long runs do not hoard memory."""
        if self.stack.standin is not None:
            self.stack.standin.reset()

    def stop(self) -> None:
        for state in (self._agno, self._agno_proxied):
            if state is not None:
                state["server"].stop()
        if self._api is not None:
            self._api.stop()
        if self._conn is not None:
            self._conn.close()
        try:
            from chatcore import db

            db.close_pool()
        except Exception:  # noqa: BLE001
            pass
        for state in (self._agno, self._agno_proxied):
            if state is not None:
                state["db"].db_engine.dispose()
                state["os_db"].db_engine.dispose()
        if self._proxy is not None:
            self._proxy.close()
        self.loop.close()
        self.stack.stop()

    # ---- our API

    @property
    def api(self):
        if self._api is None:
            from local.server import BackgroundServer
            from chatcore.web.identity import unsigned_jwt

            self._time_turn_steps()
            self._api = BackgroundServer(free_port()).start()
            self.sub = f"bench-{uuid.uuid4()}"
            self.client = httpx.Client(base_url=self._api.url, timeout=120,
                                       headers={"Authorization": f"Bearer {unsigned_jwt({'sub': self.sub})}"})
        return self._api

    def _time_turn_steps(self) -> None:
        """Time the turn's steps through the public hook (``chatcore.observability.observe_steps``):
        its begin and store transactions, and the photo bytes it moves to and from S3."""
        from chatcore.observability import observe_steps

        bd = self.breakdown
        steps = {"begin": bd.begin_ms, "store": bd.store_ms}

        def observe(step: str, ms: float) -> None:
            if step in steps:
                steps[step].append(ms)
            else:
                bd.media.append((step, ms))

        observe_steps(observe)

    def new_session(self) -> str:
        self.api
        r = self.client.post("/sessions", json={"agent": AGENT})
        r.raise_for_status()
        return r.json()["id"]

    def ours_turn(self, session_id: str, message: str, png: bytes | None = None) -> float:
        """Wall time (ms) of a streamed turn through our API, to its last byte."""
        import base64

        self.api
        body: dict[str, Any] = {"message": message}
        if png is not None:
            body["images"] = [{"data": base64.b64encode(png).decode(), "mime_type": "image/png"}]
        t = time.perf_counter()
        with self.client.stream("POST", f"/sessions/{session_id}/turns", json=body) as r:
            data = r.read()
        elapsed = (time.perf_counter() - t) * 1000
        if r.status_code != 200 or b"event: TurnCompleted" not in data:
            raise RuntimeError(f"our turn failed: HTTP {r.status_code} {data[-600:]!r}")
        return elapsed

    def our_pool_connections(self) -> list:
        from chatcore import db

        with db.connection() as conn:  # idle between turns: the pool's one connection
            return [conn]

    def ours_round_trips(self, session_id: str, message: str, png: bytes | None = None) -> RoundTrips:
        conns = self.our_pool_connections()
        with RoundTrips(conns) as rt:
            self.ours_turn(session_id, message, png)
        return rt

    def history_dicts(self, session_id: str, turns: int | None = None, conn=None) -> list[dict]:
        """The stored history of a session as the turn reads it (``Message.to_dict()`` of the last
        ``turns`` completed turns; default: the turn's own window, HISTORY_MAX_TURNS)."""
        from chatcore.config import get_settings
        from chatcore.money.budgets import month_bounds
        from chatcore.store import turns as turn_rows

        conn = conn or self.conn()
        settings = get_settings()
        if turns is None:
            turns = getattr(settings, "history_max_turns", None) or 10**9
        sid = uuid.UUID(session_id)
        month_start, month_end = month_bounds()
        row = turn_rows.read_turn_start(conn, sub=self.sub, session_id=sid, client_turn_id=None,
                                        stale_seconds=settings.stale_turn_seconds, history_turns=turns,
                                        month_start=month_start, month_end=month_end)
        return list(row["history"] or [])

    def load_history(self, session_id: str, turns: int | None = None) -> list:
        """Our stored history as the turn gives it to the model (for a bare run with the same input)."""
        from agno.models.message import Message
        from chatcore.media.agno_storage import inline_for_model

        history = []
        for row in self.history_dicts(session_id, turns):
            m = Message.from_dict(row)
            m.from_history = True
            history.append(m)
        inline_for_model(history)
        return history

    # ---- bare agno: the same agent definition, no db, reused

    @property
    def bare_agent(self):
        if self._bare is None:
            from chatcore.catalog.agents import agent_specs
            from chatcore.turns.claude import claude
            from chatcore.turns.agent import build_agent

            spec = agent_specs()[AGENT]
            agent = build_agent(spec)
            agent.model = claude.__wrapped__(spec.model_id)  # same settings, its own HTTP client
            self._bare = agent
        return self._bare

    def bare_turn(self, history: list, message: str, png: bytes | None = None) -> float:
        from agno.media import Image
        from agno.models.message import Message

        agent = self.bare_agent
        images = [Image(content=png, mime_type="image/png")] if png is not None else None
        user = Message(role="user", content=message, images=images)
        return self._timed_run("bare run", lambda: agent.arun(input=[*history, user], stream=True, stream_events=True))

    # ---- Agno's own persistence: PostgresDb, in-process and behind AgentOS

    def _agno_agent(self, db, **extra):
        from agno.agent import Agent
        from chatcore.catalog.agents import agent_specs
        from chatcore.turns.claude import claude

        spec = agent_specs()[AGENT]
        return Agent(id=AGENT, name=AGENT, description=spec.description, model=claude.__wrapped__(spec.model_id),
                     instructions=list(spec.instructions), tools=list(spec.tools), db=db,
                     add_history_to_context=True, telemetry=False, markdown=False, **extra)

    def agno_agent_with_media_storage(self, media_storage):
        """Agno's PostgresDb agent with its own media offload (images stored as S3 references)."""
        return self._agno_agent(self.agno["db"], media_storage=media_storage, store_media=True)

    def _build_agno(self, database_url: str) -> dict:
        from agno.db.postgres import PostgresDb
        from agno.os import AgentOS
        from local.server import BackgroundServer
        from sqlalchemy import event

        url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        state: dict[str, Any] = {"conns": {"db": [], "os_db": []}}
        for key in ("db", "os_db"):
            db = PostgresDb(db_url=url)  # agno's engine defaults: pool_pre_ping, its JSON serializer
            event.listen(db.db_engine, "connect",
                         lambda dbapi_conn, _rec, key=key: state["conns"][key].append(dbapi_conn))
            state[key] = db
        state["agent"] = self._agno_agent(state["db"])           # in-process PostgresDb turns
        state["os_agent"] = self._agno_agent(state["os_db"])     # the same, served by AgentOS
        app = AgentOS(agents=[state["os_agent"]], telemetry=False).get_app()
        state["server"] = BackgroundServer(free_port(), app=app).start()
        state["client"] = httpx.Client(base_url=state["server"].url, timeout=120)
        return state

    @property
    def agno(self) -> dict:
        """Agno's side: ``Agent(db=PostgresDb)`` in-process, and the same agent served by AgentOS."""
        if self._agno is None:
            self._agno = self._build_agno(self.database_url)
        return self._agno

    # ---- round trips, counted through a latency proxy (bench.latency)

    @property
    def proxy(self):
        if self._proxy is None:
            from urllib.parse import urlsplit

            from bench.latency import LatencyProxy

            u = urlsplit(self.database_url)
            self._proxy = LatencyProxy(u.hostname or "127.0.0.1", u.port or 5432)
        return self._proxy

    @property
    def agno_proxied(self) -> dict:
        if self._agno_proxied is None:
            self._agno_proxied = self._build_agno(self.proxy.url(self.database_url))
        return self._agno_proxied

    @contextlib.contextmanager
    def ours_through_proxy(self):
        """Our server's pool reopened through the proxy, then restored."""
        from chatcore import db
        from chatcore.config import get_settings

        self.api
        db.close_pool()
        os.environ["DATABASE_URL"] = self.proxy.url(self.database_url)
        get_settings.cache_clear()
        try:
            yield
        finally:
            db.close_pool()
            os.environ["DATABASE_URL"] = self.database_url
            get_settings.cache_clear()

    rt_pairs = 4  # pairs of turns per round-trip count (bin/bench --quick: 2)

    def count_round_trips(self, side: str, session_id: str, message: str, png: bytes | None = None,
                          pairs: int | None = None) -> dict:
        """Round trips of one turn of ``side`` (ours, agentos, agno) in an existing session: one
        warm-up turn through the proxy, then ``pairs`` pairs of turns at two latencies
        (``1 + 2 * pairs`` turns in all, returned as ``turns``)."""
        pairs = pairs or self.rt_pairs
        result = self._count_round_trips(side, session_id, message, png, pairs)
        result["turns"] = 1 + 2 * pairs
        return result

    def _count_round_trips(self, side: str, session_id: str, message: str, png: bytes | None,
                           pairs: int) -> dict:
        from bench import latency

        if side == "ours":
            with self.ours_through_proxy():
                turn = lambda: self.ours_turn(session_id, message, png)  # noqa: E731
                turn()
                return latency.count(turn, self.proxy, pairs)
        if side == "agentos":
            state = self.agno_proxied
            turn = lambda: self.agentos_turn(session_id, message, png, state=state)  # noqa: E731
        else:
            agent = self.agno_proxied["agent"]
            turn = lambda: self.agno_turn(session_id, message, png, agent=agent)  # noqa: E731
        turn()
        return latency.count(turn, self.proxy, pairs)

    def agentos_turn(self, session_id: str, message: str, png: bytes | None = None, state=None) -> float:
        """Wall time (ms) of a streamed AgentOS run (``POST /agents/{id}/runs``, stream=true)."""
        client = (state or self.agno)["client"]
        files = [("files", ("photo.png", png, "image/png"))] if png is not None else None
        t = time.perf_counter()
        with client.stream("POST", f"/agents/{AGENT}/runs", files=files,
                           data={"message": message, "stream": "true", "session_id": session_id,
                                 "user_id": "bench-user"}) as r:
            data = r.read()
        elapsed = (time.perf_counter() - t) * 1000
        if r.status_code != 200 or b"event: RunCompleted" not in data or b"event: RunError" in data:
            raise RuntimeError(f"AgentOS run failed: HTTP {r.status_code} {data[-600:]!r}")
        return elapsed

    def agentos_round_trips(self, session_id: str, message: str, png: bytes | None = None) -> RoundTrips:
        with RoundTrips(lambda: list(self.agno["conns"]["os_db"])) as rt:
            self.agentos_turn(session_id, message, png)
        return rt

    def agno_turn(self, session_id: str, message: str, png: bytes | None = None, agent=None) -> float:
        """Wall time (ms) of ``Agent(db=PostgresDb).arun(..., stream=True)`` in this process."""
        from agno.media import Image

        agent = agent or self.agno["agent"]
        kwargs = {"images": [Image(content=png, mime_type="image/png")]} if png is not None else {}
        return self._timed_run("Agno PostgresDb run", lambda: agent.arun(
            message, session_id=session_id, user_id="bench-user", stream=True, stream_events=True, **kwargs))

    def agno_round_trips(self, session_id: str, message: str, png: bytes | None = None) -> RoundTrips:
        with RoundTrips(lambda: list(self.agno["conns"]["db"])) as rt:
            self.agno_turn(session_id, message, png)
        return rt

    # ---- copies of real turns (to reach a long session without running every turn)

    def ours_copy_turns(self, session_id: str, count: int) -> None:
        """Append ``count`` copies of the session's last turn (its run row and its messages,
        fresh ids), through our own storage functions, in one transaction."""
        import copy

        from uuid6 import uuid7

        from chatcore.store import history as history_rows, turns as turn_rows

        conn = self.conn()
        rows = conn.execute("""
            SELECT role, agent_name, model_provider_slug, model_id, message_parts, input_tokens, output_tokens,
                   cache_read_tokens, cache_write_tokens, cost_usd, cost_in_rands, price_id, fx_rate_id, fx_rate,
                   fx_rate_date
            FROM chat_events WHERE run_id = (SELECT id FROM runs WHERE session_id = %s AND parent_run_id IS NULL
                                             AND status = 'completed' ORDER BY id DESC LIMIT 1)
            ORDER BY id""", (session_id,)).fetchall()
        sid = uuid.UUID(session_id)
        new_rows = []
        with conn.transaction():
            for _ in range(count):
                run_id = uuid7()
                turn_rows.insert_run(conn, run_id=run_id, session_id=sid, agent_name=AGENT, status="completed")
                for r in rows:
                    parts = copy.deepcopy(r["message_parts"])
                    parts["id"] = str(uuid7())
                    new_rows.append({**r, "id": uuid7(), "session_id": sid, "run_id": run_id, "message_parts": parts})
            turn_rows.insert_messages(conn, new_rows)
            history_rows.measure_runs(conn, list({r["run_id"] for r in new_rows}))  # as FINISH_RUN does

    def agno_copy_runs(self, db, session_id: str, count: int) -> None:
        """Append ``count`` copies of the session's last run through Agno's own ``PostgresDb.upsert_run``."""
        import copy

        conn = self.conn()
        last = conn.execute("""SELECT run_index, run_data FROM ai.agno_runs WHERE session_id = %s
                               ORDER BY run_index DESC LIMIT 1""", (session_id,)).fetchone()
        now = int(time.time())
        for i in range(1, count + 1):
            run = copy.deepcopy(last["run_data"])
            run["run_id"] = str(uuid.uuid4())
            run["created_at"] = now
            for m in run.get("messages") or []:
                m["id"] = str(uuid.uuid4())
            db.upsert_run(run, session_id=session_id, user_id="bench-user", run_index=last["run_index"] + i)

    # ---- stored bytes

    def relation_bytes(self, tables: tuple[str, ...]) -> int:
        """Tables + their indexes + TOAST (pg_total_relation_size), summed."""
        row = self.conn().execute(
            "SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint AS n FROM unnest(%s::text[]) t",
            (list(tables),)).fetchone()
        return int(row["n"])

    def our_row_bytes(self, session_id: str, first: int, last: int) -> int:
        """pg_column_size of every message and run row of turns first..last (1-based) of a session."""
        row = self.conn().execute("""
            WITH t AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM runs
                       WHERE session_id = %(s)s AND parent_run_id IS NULL)
            SELECT (SELECT coalesce(sum(pg_column_size(ce.*)), 0) FROM chat_events ce JOIN t ON t.id = ce.run_id
                    WHERE t.n BETWEEN %(a)s AND %(b)s)
                 + (SELECT coalesce(sum(pg_column_size(r.*)), 0) FROM runs r JOIN t ON t.id = r.id
                    WHERE t.n BETWEEN %(a)s AND %(b)s) AS n""",
            {"s": session_id, "a": first, "b": last}).fetchone()
        return int(row["n"])

    def agno_row_bytes(self, session_id: str, first: int, last: int) -> int:
        """pg_column_size of the agno_runs rows of runs first..last (1-based) of a session."""
        row = self.conn().execute("""
            WITH t AS (SELECT run_id, row_number() OVER (ORDER BY run_index, created_at, run_id) AS n
                       FROM ai.agno_runs WHERE session_id = %(s)s)
            SELECT coalesce(sum(pg_column_size(r.*)), 0) AS n FROM ai.agno_runs r JOIN t USING (run_id)
            WHERE t.n BETWEEN %(a)s AND %(b)s""", {"s": session_id, "a": first, "b": last}).fetchone()
        return int(row["n"])


def dumps(x: Any) -> str:
    return json.dumps(x, default=str)
