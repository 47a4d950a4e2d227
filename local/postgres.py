"""A throwaway local PostgreSQL cluster, or the one named by DATABASE_URL.

The server binaries refuse to run as root, so as root the cluster is run as the
``postgres`` user. Everything lives in one temporary directory that ``stop`` removes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from local.pgbouncer import LocalPgBouncer
from local.ports import free_port

APP_USER = "chat_app"


def _find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    raise RuntimeError(
        f"PostgreSQL server binary {name!r} not found. Install PostgreSQL (e.g. "
        "`apt-get install postgresql`) or set DATABASE_URL to an existing database."
    )


@dataclass
class LocalPostgres:
    """A PostgreSQL server in a temporary directory, listening on 127.0.0.1."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chat-pg-")))
    _as_user: list[str] = field(default_factory=list)
    # PgBouncer in transaction pooling mode in front of it (``LOCAL_PGBOUNCER=1``): every database
    # URL handed out goes through it; ``admin_url`` and ``direct_url`` do not.
    bouncer: LocalPgBouncer | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str = "postgres") -> str:
        """A database's URL for the application and the tests: through PgBouncer when it runs."""
        return self.bouncer.url(dbname) if self.bouncer is not None else self.direct_url(dbname)

    def direct_url(self, dbname: str = "postgres") -> str:
        """A database's URL on the server itself (what a test of one server connection needs)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start_bouncer(self) -> "LocalPostgres":
        """Put PgBouncer (transaction pooling) in front of the server."""
        self.bouncer = LocalPgBouncer(self.port).start()
        return self

    def start(self) -> "LocalPostgres":
        initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
        data = self.root / "data"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        run = lambda *cmd: subprocess.run(  # noqa: E731
            [*self._as_user, *cmd], check=True, capture_output=True, text=True
        )
        try:
            run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            run(*self._start_command())
        except subprocess.CalledProcessError as e:
            log = self.root / "server.log"
            detail = log.read_text() if log.exists() else ""
            raise RuntimeError(f"could not start PostgreSQL: {e.stderr}\n{detail}") from e
        return self

    def _start_command(self) -> list[str]:
        return [_find_binary("pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-w",
                "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (every connection is closed, as in a crash or a failover), stay down
        ``down_seconds``, and start it again on the same port (fault tests)."""
        import time

        subprocess.run([*self._as_user, _find_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w",
                        "stop"], check=True, capture_output=True)
        time.sleep(down_seconds)
        subprocess.run([*self._as_user, *self._start_command()], check=True, capture_output=True)

    def create_database(self, name: str) -> str:
        """A new database of the throwaway cluster (and the app user, once per cluster)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            # the application user the migrations grant (template DbUser's default, DB_APP_USER): as in
            # AWS it exists before the first migration; locally everything still connects as postgres
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(APP_USER)))
        return self.url(name)

    def stop(self) -> None:
        if self.bouncer is not None:
            self.bouncer.stop()
        data = self.root / "data"
        if data.exists():
            subprocess.run(
                [*self._as_user, _find_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)
