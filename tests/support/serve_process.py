"""`bin/serve` run as the user runs it: a subprocess with a throwaway stack of its own (its own
Postgres cluster, moto and stand-in, in a temp dir of its own), for the tests of `bin/smoke` and of
stopping `bin/serve` (the ``serve`` fixture); and ``another_instance`` of the API, a process sharing
the test stack's database, S3 and model."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
# What makes start_stack reuse something instead of starting its own (the test session's own stack
# put these into this process's environment): bin/serve must start everything itself.
STACK_VARIABLES = ("DATABASE_URL", "AWS_ENDPOINT_URL_S3", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                   "ALLOW_UNSIGNED_JWT", "MEDIA_BUCKET", "SPOOL_QUEUE_URL", "AWS_ENDPOINT_URL_SQS")


def process_gone(pid: int) -> bool:
    """The process has exited (a zombie nobody has reaped yet counts as exited: here PID 1 does not
    reap the postmaster that pg_ctl detached)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ServeProcess:
    """``bin/serve --port PORT`` with TMPDIR set to a fresh directory (where its cluster lives) and the
    log (stdout and stderr) in ``log_path``."""

    def __init__(self, log_path: Path, sub: str = "serve-test-user"):
        # as root the cluster runs as the postgres user, who must reach its directory: not under pytest's
        # tmp_path (mode 0700), a directory of its own in the system's temp dir
        self.tmpdir = Path(tempfile.mkdtemp(prefix="serve-test-"))
        self.tmpdir.chmod(0o755)
        self.log_path = log_path
        self.port = free_port()
        self.sub = sub
        self.proc: subprocess.Popen | None = None
        self._postmaster_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServeProcess":
        env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
        env["TMPDIR"] = str(self.tmpdir)
        with open(self.log_path, "wb") as log:
            # its own session: a signal meant for the test run (Ctrl-C) is not also sent to it
            self.proc = subprocess.Popen([str(ROOT / "bin" / "serve"), "--port", str(self.port), "--sub", self.sub],
                                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _check_running(self, what: str) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"bin/serve exited ({self.proc.returncode}) while waiting for {what}:\n{self.log}")

    def wait_for_log(self, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log)
            if found:
                return found
            self._check_running(repr(pattern))
            if time.monotonic() > deadline:
                pytest.fail(f"bin/serve printed no {pattern!r} within {timeout} s:\n{self.log}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 90) -> "ServeProcess":
        """Until GET /healthz answers 200 (the stack is up, migrations applied, the API serving) and
        bin/serve has printed its banner (it does once the API listens: /healthz may answer first)."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            self._check_running("/healthz")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    self.wait_for_log(r"Stop with Ctrl-C or SIGTERM", timeout=max(deadline - time.monotonic(), 5))
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"bin/serve did not answer /healthz within {timeout} s:\n{self.log}")
            time.sleep(0.1)

    @property
    def token(self) -> str:
        return self.wait_for_log(r"export TOKEN=(\S+)").group(1)

    def printed_port(self, pattern: str) -> int:
        return int(self.wait_for_log(pattern).group(1))

    def clusters(self) -> list[Path]:
        return sorted(self.tmpdir.glob("chat-pg-*"))

    def postmaster_pid(self) -> int:
        """The pid of the cluster's postmaster (the first line of its postmaster.pid)."""
        [cluster] = self.clusters()
        self._postmaster_pid = int((cluster / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        return self._postmaster_pid

    def leftovers(self) -> list[str]:
        """What is left in its temp dir, but for uv's lock file (bin/'s bootstrap runs `uv sync`)."""
        return sorted(p.name for p in self.tmpdir.iterdir() if not re.fullmatch(r"uv-[0-9a-f]+\.lock", p.name))

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"bin/serve did not exit within {timeout} s:\n{self.log}")

    def close(self) -> None:
        """Whatever the test left: the process (its whole session), a cluster still running, the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for cluster in self.clusters():
            if (cluster / "data" / "postmaster.pid").exists():
                from local.postgres import _find_binary

                as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
                subprocess.run([*as_user, _find_binary("pg_ctl"), "-D", str(cluster / "data"), "-m", "immediate",
                                "stop"], capture_output=True)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """A ``ServeProcess`` not yet started; whatever it left is cleaned up after the test."""
    process = ServeProcess(tmp_path / "serve.log")
    yield process
    process.close()


def another_instance(env: dict[str, str], log: Path) -> Iterator[str]:
    """Another instance of the API (``local.server.serve_forever``) in a process of its own, with
    ``env``; yields its URL once /healthz answers, and stops it afterwards."""
    for url, _ in instance_process(env, log):
        yield url


def instance_process(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``another_instance``, yielding its URL and its process (a test may kill it: SIGKILL, as a
    sandbox that is recycled); stopped afterwards if it still runs. Without a spool queue of the
    test's own in ``env`` (``SPOOL_QUEUE_URL``), it has none."""
    import sys

    import httpx

    port = free_port()
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "core")])}
    if env.get("SPOOL_QUEUE_URL") == os.environ.get("SPOOL_QUEUE_URL"):
        # the test session's spool queue is consumed by no instance (a turn another test spooled is
        # that test's to write): an instance gets a spool, and its consumer, with a queue of its test's own
        env.pop("SPOOL_QUEUE_URL", None)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", f"from local.server import serve_forever; "
                                 f"serve_forever('127.0.0.1', {port})"], cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"the instance did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield url, proc
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
