"""Stopping `bin/serve`: SIGTERM (kill, docker stop, systemd) and SIGHUP (the terminal closed) clean up
exactly as Ctrl-C (SIGINT) does. It exits 0, promptly, and nothing it started outlives it: the
throwaway Postgres cluster's postmaster has exited, its port is closed and its temp dir is removed;
the API, moto and the stand-in (threads of the process) no longer answer. The same holds for a
signal that arrives while the stack is still starting. bin/serve runs as a subprocess, as a user
runs it (tests/support/serve_process.py)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.serve_process import accepts, process_gone

STOP_WITHIN_SECONDS = 20  # measured: about 3 s (most of it the interpreter's own exit); slack for a busy machine


def _assert_all_gone(serve, postmaster: int, ports: dict[str, int]) -> None:
    assert process_gone(postmaster), f"the postmaster {postmaster} still runs after bin/serve exited:\n{serve.log}"
    still_open = [name for name, port in ports.items() if accepts(port)]
    assert not still_open, f"still accepting connections after bin/serve exited: {still_open}\n{serve.log}"
    assert serve.leftovers() == [], f"left in its temp dir: {serve.leftovers()}\n{serve.log}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_stops_bin_serve_and_everything_it_started(serve, sig):
    serve.start().wait_ready()
    postmaster = serve.postmaster_pid()
    ports = {"api": serve.port,
             "postgres": serve.printed_port(r"postgres: started a throwaway cluster on port (\d+)"),
             "moto": serve.printed_port(r"s3: started a moto server on port (\d+)"),
             "stand-in": serve.printed_port(r"LOCAL STAND-IN model server at http://127\.0\.0\.1:(\d+)")}
    assert not process_gone(postmaster) and all(accepts(port) for port in ports.values())
    # the spool's consumer (what the spool function does in AWS) runs as a thread, and says so
    serve.wait_for_log(r"spool: a consumer thread writes the turns spooled while Postgres was unreachable "
                       r"\(queue http://127\.0\.0\.1:\d+/\d+/chat-spool-local\.fifo\)")

    started = time.monotonic()
    serve.send(sig)
    status = serve.wait(STOP_WITHIN_SECONDS)
    took = time.monotonic() - started

    assert status == 0, f"bin/serve exited {status} on {sig.name}:\n{serve.log}"
    _assert_all_gone(serve, postmaster, ports)
    assert f"bin/serve: {sig.name} received; stopping the API and the local stack" in serve.log
    assert serve.log.rstrip().endswith("bin/serve: stopped"), serve.log
    assert "Traceback" not in serve.log, serve.log
    print(f"{sig.name}: bin/serve exited 0 after {took:.2f} s")


def test_a_stop_signal_while_the_stack_starts_still_removes_the_cluster(serve):
    serve.start()
    # the cluster is up and its database made; migrations, moto, the stand-in and the API are still to come
    port = serve.printed_port(r"postgres: started a throwaway cluster on port (\d+)")
    postmaster = serve.postmaster_pid()
    serve.send(signal.SIGTERM)
    status = serve.wait(STOP_WITHIN_SECONDS)
    assert status == 0, f"bin/serve exited {status}:\n{serve.log}"
    _assert_all_gone(serve, postmaster, {"postgres": port, "api": serve.port})
    assert "bin/serve: SIGTERM received" in serve.log and "Traceback" not in serve.log, serve.log
    assert "Chat API on" not in serve.log, "the signal came after the start: this test did not test a start"
