"""The account function (functions/account/handler.py): the jobs DELETE /me and POST /me/export hand
over. The handler runs a deletion and an export by event, in its own process as in Lambda (never
importing agno); a malformed event is a clear error. With ``ACCOUNT_FUNCTION_NAME`` set, the API
really calls Lambda's Invoke API (InvocationType Event, the job as payload): boto3 is pointed at a
small local HTTP server standing in for Lambda's endpoint (``AWS_ENDPOINT_URL_LAMBDA``), which
records the request and answers 202 as Lambda does; and a Lambda that cannot be reached never fails
the request. Real Postgres, moto S3 and the real SDKs; nothing mocked."""

from __future__ import annotations

import http.server
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from urllib.parse import unquote

import boto3
import httpx
import pytest

from tests.support import costdata
from tests.support.images import LARGE_PNG, b64

HANDLER = costdata.ROOT / "functions" / "account" / "handler.py"
FUNCTION_NAME = "agent-chat-AccountFunction-Ab12Cd34"


def run_handler(event: dict) -> tuple[int, dict | None, str]:
    """The account function's handler with ``event``, in a process of its own whose path holds only
    the function's folder and the core layer, as on Lambda: (return code, its summary, stderr)."""
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(HANDLER.parent)!r}, {str(costdata.ROOT / 'layers' / 'core')!r}]\n"
        "import handler\n"
        "out = handler.handler(json.loads(sys.argv[1]), None)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('agno', 'anthropic'))\n"
        "assert not bad, bad\n"
        "print(json.dumps({'returned': out}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DB_POOL_MAX"] = "1"  # Lambda's: a job never holds two pooled connections at once
    r = subprocess.run([sys.executable, "-c", code, json.dumps(event)], cwd=HANDLER.parent, env=env,
                       capture_output=True, text=True, timeout=180)
    returned = None
    for line in r.stdout.splitlines():
        if line.startswith('{"returned"'):
            returned = json.loads(line)["returned"]
    return r.returncode, returned, r.stderr + r.stdout


def load_handler():
    """The handler module imported here (its own name: the rollup's is ``handler`` too)."""
    spec = importlib.util.spec_from_file_location("account_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LambdaStandIn:
    """Lambda's Invoke endpoint (``POST /2015-03-31/functions/{name}/invocations``): records each
    request and answers an asynchronous invoke as Lambda does, 202 with an empty body."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        recorded = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorded.append({"path": unquote(self.path), "headers": dict(self.headers), "body": body})
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def lambda_standin(settings_env):
    """ACCOUNT_FUNCTION_NAME set and Lambda's endpoint the stand-in: jobs go to "Lambda"."""
    from chatcore.account import jobs
    from chatcore.config import get_settings

    standin = LambdaStandIn()
    settings_env.setenv("ACCOUNT_FUNCTION_NAME", FUNCTION_NAME)
    settings_env.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.url)
    get_settings.cache_clear()
    jobs.forget_client()
    yield standin
    standin.close()
    jobs.forget_client()


@pytest.fixture()
def s3(stack):
    return boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")


def test_the_handler_runs_an_account_deletion_by_event(user, standin, db_conn, s3, stack):
    from chatcore.store import accounts

    sid = user.new_session()
    r, events = user.turn(sid, message="my photo", images=[{"data": b64(LARGE_PNG)}])
    assert events[-1]["event"] == "TurnCompleted", r.text[-500:]
    bucket = stack.env["MEDIA_BUCKET"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-")["KeyCount"] == 1
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    with db_conn.transaction():  # what DELETE /me records before it hands the rest over
        deletion_id = accounts.request_deletion(db_conn, user.sub)

    code, summary, log = run_handler({"job": "deletion", "id": str(deletion_id)})
    assert code == 0, log[-3000:]
    assert summary == {"job": "deletion", "id": str(deletion_id), "done": True, "sessions_deleted": 1,
                       "waiting_for": []}
    assert '"message":"account job done"' in log  # the summary is logged
    assert not db_conn.execute("SELECT 1 FROM users WHERE id = %s", (uid,)).fetchall()
    assert not db_conn.execute("SELECT 1 FROM sessions WHERE id = %s", (sid,)).fetchall()
    assert not db_conn.execute("SELECT 1 FROM account_deletions WHERE id = %s", (deletion_id,)).fetchall()
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-")["KeyCount"] == 0
    # Lambda may deliver an event twice, and retries: the same job again does nothing, and succeeds
    code, again, log = run_handler({"job": "deletion", "id": str(deletion_id)})
    assert code == 0 and again["done"] is True and again["sessions_deleted"] == 0, log[-3000:]


def test_the_api_hands_an_export_to_lambda_and_the_handler_builds_it_from_that_payload(
        user, standin, lambda_standin, settings_env, stack):
    from chatcore.config import get_settings

    settings_env.setenv("ACCOUNT_WAIT_SECONDS", "0.2")
    get_settings.cache_clear()
    sid = user.new_session()
    user.turn(sid, message="my photo", images=[{"data": b64(LARGE_PNG)}])
    r = user.client.post("/me/export")
    assert r.status_code == 202 and r.json()["status"] == "building", r.text  # no job ran here
    export_id = r.json()["id"]

    (call,) = lambda_standin.requests
    assert call["path"] == f"/2015-03-31/functions/{FUNCTION_NAME}/invocations"
    headers = {k.lower(): v for k, v in call["headers"].items()}
    assert headers["x-amz-invocation-type"] == "Event"  # asynchronous: Lambda retries, then the queue
    assert "/lambda/aws4_request" in headers["authorization"]  # signed for Lambda (SigV4)
    payload = json.loads(call["body"])
    assert payload == {"job": "export", "id": export_id}
    assert not [t for t in threading.enumerate() if t.name == f"export-{export_id}"]

    code, summary, log = run_handler(payload)
    assert code == 0, log[-3000:]
    assert summary["job"] == "export" and summary["id"] == export_id and summary["status"] == "ready"
    assert summary["sessions"] == 1 and summary["photos"] == 1
    ready = user.client.get("/me/export").json()
    assert ready["id"] == export_id and ready["status"] == "ready" and ready["url"]
    with zipfile.ZipFile(io.BytesIO(httpx.get(ready["url"]).content)) as zf:
        assert "account.json" in zf.namelist()
        assert json.loads(zf.read("account.json"))["account"]["sub"] == user.sub


def test_a_malformed_event_is_a_clear_error():
    handler = load_handler()
    for event, message in [
        (None, "must name a job"),
        ({}, "must name a job"),
        ({"job": "rollup", "id": str(uuid.uuid4())}, "must name a job"),
        ({"job": "deletion"}, "must name the job's id"),
        ({"job": "export", "id": "not-a-uuid"}, "must name the job's id"),
    ]:
        with pytest.raises(ValueError, match=message):
            handler.handler(event, None)
    # and from Lambda's side: the invoke fails (retried, then the failures queue), naming the problem
    code, summary, log = run_handler({"job": "exprot", "id": str(uuid.uuid4())})
    assert code != 0 and summary is None
    assert 'ValueError: the event must name a job ("job": one of deletion, export)' in log


def test_starting_a_job_calls_lambda_s_invoke_api(lambda_standin, stack):
    from chatcore.account import jobs

    deletion_id = uuid.uuid4()
    jobs.start("deletion", deletion_id)
    (call,) = lambda_standin.requests
    assert call["path"] == f"/2015-03-31/functions/{FUNCTION_NAME}/invocations"
    assert {k.lower(): v for k, v in call["headers"].items()}["x-amz-invocation-type"] == "Event"
    assert json.loads(call["body"]) == {"job": "deletion", "id": str(deletion_id)}


def test_starting_a_job_never_raises_when_lambda_cannot_be_reached(settings_env, stack, caplog):
    from chatcore.account import jobs
    from chatcore.config import get_settings
    from local.ports import free_port

    settings_env.setenv("ACCOUNT_FUNCTION_NAME", FUNCTION_NAME)
    settings_env.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{free_port()}")  # nothing listens
    get_settings.cache_clear()
    jobs.forget_client()
    try:
        export_id = uuid.uuid4()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="chatcore.account.jobs"):
            jobs.start("export", export_id)  # no exception: the job stays recorded for the schedule
        assert time.monotonic() - started < 20
        assert any(f"could not start the export job {export_id}" in r.getMessage() for r in caplog.records)
        assert not [t for t in threading.enumerate() if t.name == f"export-{export_id}"]  # no local fallback
    finally:
        jobs.forget_client()
