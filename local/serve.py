"""Serve the API locally on a port, for a phone or a script: `bin/serve [--port 8000]`.

Starts the local stack (see local/stack.py) and prints a development token and curl examples.

Stopping: Ctrl-C (SIGINT), `kill` (SIGTERM: docker stop, systemd, a test harness) and a closed
terminal (SIGHUP) all take the same orderly way out: the API stops (open streams get a few seconds),
then the stand-in, moto and the throwaway Postgres (its postmaster stopped, its temp dir removed),
and the exit status is 0. A signal while the stack is still starting stops the start and cleans up
the same way. A second signal during the cleanup is ignored, so the cleanup is never cut short.
Only SIGKILL, which no process can catch, leaves the cluster behind.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from local.stack import Stack, start_stack

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACEFUL_SECONDS = 5  # how long open requests (a streaming turn) may take to finish on a stop


class Stopped(Exception):
    """A stop signal arrived while the stack was starting."""


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP as one request to stop, while installed (``with``).

    While starting, the first signal raises ``Stopped`` in the main thread, which unwinds the start
    (``start_stack`` stops what it had started). While serving, it only sets ``requested``
    (``wait`` returns) and the main thread stops the server and the stack. While stopping, signals
    are ignored.
    """

    def __init__(self) -> None:
        self.phase = "starting"
        self.received: int | None = None
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None or self.phase == "stopping":
            return
        self.received = signum
        self.requested.set()
        if self.phase == "starting":
            raise Stopped(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def wait(self, alive) -> None:
        """Until a stop signal arrives or ``alive()`` turns false (the server died)."""
        while not self.requested.wait(0.5):
            if not alive():
                return


def _print_pushes() -> None:
    """Print each push notification the server sends (to moto's SNS: recorded, not delivered) and why
    one was not: the lines of ``chatcore.notify``'s loggers, on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bin/serve: %(message)s"))
    for name in ("chatcore.notify.pushes", "chatcore.notify.sns", "chatcore.notify.devices"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/serve", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1",
                        help="0.0.0.0 to let a phone on your network reach it (dev tokens are unsigned!)")
    parser.add_argument("--sub", default="local-dev-user", help="the user the printed token identifies")
    args = parser.parse_args(argv)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    stack: Stack | None = None
    server = consumer = None
    status = 0
    with StopSignals() as signals:
        try:
            stack = start_stack().apply()
            _print_pushes()
            from chatcore.web.identity import unsigned_jwt
            from local.server import BackgroundServer, start_spool_consumer

            token = unsigned_jwt({"sub": args.sub})
            server = BackgroundServer(args.port, host=args.host, log_level="info", graceful_seconds=GRACEFUL_SECONDS)
            server.start()
            consumer = start_spool_consumer()
            if consumer is not None:
                say(f"spool: a consumer thread writes the turns spooled while Postgres was unreachable "
                    f"(queue {stack.env['SPOOL_QUEUE_URL']})")
            signals.phase = "serving"
            base = server.url
            say(f"""
Chat API on {base}  (model: {stack.model_description})
Development token for sub={args.sub!r} (unsigned; accepted only because ALLOW_UNSIGNED_JWT=1):

  export TOKEN={token}
  curl -s -X POST {base}/sessions -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"agent": "assistant"}}'
  curl -N -X POST {base}/sessions/SESSION_ID/turns -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"message": "What is 12 * 7?"}}'
  bin/smoke {base} "$TOKEN"    # the deployed-stage smoke test, against this server

Stop with Ctrl-C or SIGTERM{" (either removes the throwaway Postgres)" if stack.postgres else ""}.
""")
            signals.wait(server.thread.is_alive)
            if signals.received is None:
                say("bin/serve: the API server stopped on its own (see the log above)")
                status = 1
        except Stopped:
            pass  # a signal while starting: cleaned up below, exit 0 as for any stop
        finally:  # also when the start failed (its exception and traceback follow the cleanup)
            signals.phase = "stopping"
            if signals.received is not None:
                say(f"bin/serve: {signals.name} received; stopping the API and the local stack")
            if server is not None:
                server.stop(timeout=GRACEFUL_SECONDS + 5)
            if consumer is not None:
                consumer.stop()
            if stack is not None:
                from chatcore import db

                db.close_pool()
                stack.stop()
            if signals.received is not None:
                say("bin/serve: stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
