"""PgBouncer in transaction pooling mode in front of the throwaway Postgres: the local stand-in for
RDS Proxy, which also multiplexes a client connection over server connections between transactions.
Whatever would pin a proxied connection (SET, session advisory locks, server-side prepared
statements, LISTEN, temporary tables outliving a transaction) fails or misbehaves here instead.

Debian's ``pgbouncer`` package; like the server binaries it refuses to run as root, so as root it is
run as the ``postgres`` user. Every user may log in without a password (as the throwaway cluster
allows): ``auth_type = trust`` with the users looked up in the cluster itself (``auth_query``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from local.ports import free_port


def find_pgbouncer() -> str:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("pgbouncer not found: install it (`apt-get install pgbouncer`) to run the tests through it")


class LocalPgBouncer:
    """PgBouncer listening on 127.0.0.1, pooling per transaction onto the server at ``upstream_port``."""

    def __init__(self, upstream_port: int, *, pool_size: int = 20) -> None:
        self.upstream_port = upstream_port
        self.pool_size = pool_size
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chat-pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> "LocalPgBouncer":
        ini = self.root / "pgbouncer.ini"
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        ini.write_text("\n".join([
            "[databases]",
            f"* = host=127.0.0.1 port={self.upstream_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "pool_mode = transaction",
            "auth_type = trust",
            f"auth_file = {self.root / 'userlist.txt'}",
            "auth_user = postgres",
            "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename = $1",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 1000",
            "max_db_connections = 0",
            "server_reset_query =",
            "ignore_startup_parameters = extra_float_digits,options",
            f"logfile = {self.root / 'pgbouncer.log'}",
            "log_connections = 0",
            "log_disconnections = 0",
            "",
        ]))
        as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            for path in self.root.iterdir():
                os.chown(path, pw.pw_uid, pw.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        self.process = subprocess.Popen([*as_user, find_pgbouncer(), str(ini)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    detail = log.read_text() if log.exists() else ""
                    err = self.process.stderr.read().decode() if self.process.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {err}{detail}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)
