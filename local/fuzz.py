"""Fuzz the served API with schemathesis: `bin/fuzz [--max-examples N] [--seed S] [--url URL --token TOKEN]`.

Every operation of docs/openapi.json is sent generated requests, valid and invalid, in schemathesis'
phases (examples, coverage, fuzzing, and stateful sequences that follow the document's links), and
every response goes through all of schemathesis' checks: no 5xx; status, content type, headers and
body as documented; schema-valid data accepted (2xx, or 401/403/404/409/429) and schema-violating
data refused; a 405 with ``Allow`` for a method the path does not have; no access without a token.
The exit status is schemathesis': 0 when every check passed, 1 on any failure.

Without ``--url``, the local stack (throwaway Postgres, moto S3, the stand-in model) and the API are
started on free ports for the run and stopped after it. The requests carry an unsigned development
token of a user made for the run (``fuzz-<uuid>``), so nothing of another user is touched.

What the run leaves out or pins, and why (the rest is the document as it is):

- ``DELETE /me`` deletes the fuzzing user's account halfway through the run (``--exclude-operation-id
  deleteMe``); tests/integration/test_account_deletion.py covers it.
- A ``cursor`` is opaque: its pattern (URL-safe base64) is in the document, but a well-formed value
  the API never issued is 422. Schema-valid cursors are drawn from cursors the API issues
  (``query.cursor`` dictionaries, for sessions, messages, memories and reminders); invalid ones are still
  generated and must be refused.
- ``GET /usage`` takes at most 366 days, ``from`` not after ``to`` (its description says so; no JSON
  schema relates two parameters, nor a day to today): valid ``from``/``to`` are drawn from days
  around today.
- The coverage phase draws its values from the schema alone (not from those dictionaries): for the
  cursor and usage routes it may also be answered 422 there.
- ``POST .../turns/{run_id}/approvals`` with a generated run id finds no paused turn of the fuzzing
  user: 404, before its decisions are matched with the pending calls (422 otherwise; a turn that pauses
  is tests/integration/test_approvals.py's).
- ``PATCH /me/memories/{memory_id}`` with a generated id finds no memory of the fuzzing user: 404,
  before its body's state-dependent rules (past ``MEMORY_MAX_TOKENS``, already said) are read.
- A turn's photo must be a real image whose bytes are of its ``mime_type``: no JSON schema says that,
  so a generated one is refused (422 ``invalid-image``), which ``positive_data_acceptance`` allows for
  ``POST /sessions/{session_id}/turns`` alone. Every other rule of a turn is in the document.
- 413 is a refusal too (``negative_data_rejection``): POST /uploads answers a size over the document's
  maximum with 413, as for a larger UPLOAD_MAX_BYTES.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "docs" / "openapi.json"
EXCLUDED_OPERATIONS = ("deleteMe",)
# The statuses schemathesis expects, with 413 for a refusal and 422 for a turn's generated photo.
REFUSED = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
ACCEPTED = ["2XX", "3XX", 401, 403, 404, 409, 429]


def _cursor(*parts: str) -> str:
    """A cursor as the API writes one (functions/api/api_app.py ``_encode_cursor``)."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def _toml(value: object) -> str:
    return json.dumps(value)  # a TOML basic string, integer or array is written as JSON writes it


def config(today: date | None = None) -> str:
    """The schemathesis configuration of a run (TOML), with the days of ``GET /usage`` around ``today``."""
    today = today or date.today()
    ids = [str(uuid.UUID(int=n)) for n in (1, 2**127)]
    session_cursors = [_cursor(f"{today - timedelta(days=d)}T12:00:00+00:00", i) for d, i in zip((1, 30), ids)]
    message_cursors = [_cursor(i) for i in ids]
    days_from = [str(today - timedelta(days=d)) for d in (300, 40, 0)]
    days_to = [str(today + timedelta(days=d)) for d in (0, 30)]
    lines = [
        "# written by local/fuzz.py for one run",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {_toml(REFUSED)}",
        "",
        "[dictionaries.session_cursors]", f"values = {_toml(session_cursors)}",
        "[dictionaries.message_cursors]", f"values = {_toml(message_cursors)}",
        "[dictionaries.memory_cursors]", f"values = {_toml(message_cursors)}",  # a memory's id, as a message's
        "[dictionaries.usage_from]", f"values = {_toml(days_from)}",
        "[dictionaries.usage_to]", f"values = {_toml(days_to)}",
        "",
        "[[operations]]", 'include-operation-id = "listSessions"',
        'parameters = { "query.cursor" = { dictionary = "session_cursors" } }',
        f"phases.coverage.checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED + [422])}",
        "[[operations]]", 'include-operation-id = "listMessages"',
        'parameters = { "query.cursor" = { dictionary = "message_cursors" } }',
        f"phases.coverage.checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED + [422])}",
        "[[operations]]", 'include-operation-id = "listMemories"',
        'parameters = { "query.cursor" = { dictionary = "memory_cursors" } }',
        f"phases.coverage.checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED + [422])}",
        "[[operations]]", 'include-operation-id = "listReminders"',
        'parameters = { "query.cursor" = { dictionary = "memory_cursors" } }',  # a reminder's id, as a memory's
        f"phases.coverage.checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED + [422])}",
        "[[operations]]", 'include-operation-id = "getUsage"',
        'parameters = { "query.from" = { dictionary = "usage_from" }, "query.to" = { dictionary = "usage_to" } }',
        f"phases.coverage.checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED + [422])}",
        "[[operations]]", 'include-operation-id = "streamTurn"',
        f"checks.positive_data_acceptance.expected-statuses = {_toml(ACCEPTED + [422])}",
    ]
    return "\n".join(lines) + "\n"


def command(url: str, token: str, config_path: Path, *, max_examples: int, seed: int | None,
            workers: int, extra: list[str]) -> list[str]:
    """The ``schemathesis run`` command line of a run against ``url``."""
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_path), "--no-color", "run", str(OPENAPI),
           "--url", url, "--header", f"Authorization: Bearer {token}", "--checks", "all",
           "--max-examples", str(max_examples), "--workers", str(workers), "--request-timeout", "60",
           "--suppress-health-check", "all", "--warnings", "off", "--output-truncate", "true"]
    for operation_id in EXCLUDED_OPERATIONS:
        cmd += ["--exclude-operation-id", operation_id]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd + extra


def warm_up(url: str, token: str) -> None:
    """Load the turn path once (a server imports agno on its first turn, seconds on a small
    machine), so the first generated turn is not timed with it (schemathesis allows 10 s)."""
    import httpx

    r = httpx.post(f"{url}/sessions/{uuid.uuid4()}/turns", json={"message": "warm-up"},
                   headers={"Authorization": f"Bearer {token}"}, timeout=120)
    if r.status_code != 404:
        raise RuntimeError(f"the API at {url} did not answer a turn of no session with 404: {r.status_code} {r.text[:300]}")


def run(url: str, token: str, *, max_examples: int = 20, seed: int | None = None, workers: int = 1,
        extra: list[str] = (), output=None) -> int:
    """Run schemathesis against the API at ``url`` as the user of ``token``; its exit status."""
    warm_up(url, token)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        config_path = Path(tmp) / "schemathesis.toml"
        config_path.write_text(config())
        cmd = command(url, token, config_path, max_examples=max_examples, seed=seed, workers=workers,
                      extra=list(extra))
        return subprocess.run(cmd, cwd=tmp, stdout=output, stderr=subprocess.STDOUT if output else None,
                              check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--max-examples", type=int, default=20, help="generated requests per operation and phase")
    parser.add_argument("--seed", type=int, help="schemathesis' seed (a failure's report names the run's)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--url", help="an API already served (bin/serve); default: start the local stack")
    parser.add_argument("--token", help="with --url: a bearer token of a user the run may change")
    args, extra = parser.parse_known_args(argv)
    if args.url:
        if not args.token:
            parser.error("--url needs --token (bin/serve prints one; use a user of its own: --sub)")
        return run(args.url, args.token, max_examples=args.max_examples, seed=args.seed, workers=args.workers,
                   extra=extra)

    from chatcore.web.identity import unsigned_jwt
    from local.ports import free_port
    from local.server import BackgroundServer
    from local.stack import start_stack

    os.environ.setdefault("DB_POOL_MAX", "4")
    stack = start_stack(database_name=f"chat_fuzz_{uuid.uuid4().hex[:8]}", force_standin=True).apply()
    server = None
    try:
        server = BackgroundServer(free_port()).start()
        token = unsigned_jwt({"sub": f"fuzz-{uuid.uuid4()}"})
        return run(server.url, token, max_examples=args.max_examples, seed=args.seed, workers=args.workers,
                   extra=extra)
    finally:
        if server is not None:
            server.stop()
        from chatcore import db

        db.close_pool()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
