"""bin/preflight against a stand-in Lambda endpoint (AWS_ENDPOINT_URL_LAMBDA): a tiny local HTTP
server that answers GetAccountSettings and GetLayerVersion with answers shaped as Lambda's API
reference gives them, and counts what it was asked. boto3 signs and parses as it would for AWS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

from local.invoke import ROOT

WEB_ADAPTER = "arn:aws:lambda:{region}:753240598075:layer:LambdaAdapterLayerArm64"


class StandInLambda(ThreadingHTTPServer):
    """What a new account in a region answers: a concurrency quota of 10, the Web Adapter's versions 30-32."""

    quota = 10
    layer_versions = (30, 31, 32)

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: StandInLambda

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict, error: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = unquote(self.path.split("?")[0])
        self.server.requests.append(path)
        assert self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"), "unsigned request"
        if path.rstrip("/") == "/2016-08-19/account-settings":
            quota = self.server.quota
            self._send(200, {"AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                                              "CodeSizeZipped": 52428800, "ConcurrentExecutions": quota,
                                              "UnreservedConcurrentExecutions": quota},
                             "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}})
            return
        if path.startswith("/2018-10-31/layers/"):
            layer, _, version = path.removeprefix("/2018-10-31/layers/").rpartition("/versions/")
            if layer.startswith("arn:aws:lambda:") and layer.endswith(":753240598075:layer:LambdaAdapterLayerArm64") \
                    and int(version) in self.server.layer_versions:
                self._send(200, {"LayerArn": layer, "LayerVersionArn": f"{layer}:{version}", "Version": int(version),
                                 "CompatibleArchitectures": ["arm64"], "CompatibleRuntimes": [],
                                 "Content": {"CodeSize": 1966080}, "CreatedDate": "2026-06-01T00:00:00.000+0000"})
                return
            self._send(404, {"Type": "User", "message": "The resource you requested does not exist."},
                       "ResourceNotFoundException")
            return
        self._send(404, {"message": f"not a Lambda path {path}"}, "ResourceNotFoundException")


@pytest.fixture()
def lambda_endpoint():
    server = StandInLambda()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _preflight(*args: str, endpoint: str, credentials: bool = True, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL_LAMBDA": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds")})
    if credentials:
        env.update({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"})
    return subprocess.run([sys.executable, "-m", "local.preflight", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_without_credentials_it_says_it_skipped_and_asks_nothing(lambda_endpoint, tmp_path):
    r = _preflight("af-south-1", endpoint=lambda_endpoint.url, credentials=False, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SKIPPED: no AWS credentials" in r.stdout and lambda_endpoint.requests == []


def test_the_defaults_deploy_on_a_new_account_with_a_quota_of_10(lambda_endpoint, tmp_path):
    r = _preflight("af-south-1", endpoint=lambda_endpoint.url, tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("OK  ") >= 4, r.stdout
    assert "quota 10, unreserved now 10; this stack reserves 0" in r.stdout
    assert "at most 10 connections of DbMaxConnections=80" in r.stdout  # 10 sandboxes x 1
    assert f"{WEB_ADAPTER.format(region='af-south-1')}:30" in r.stdout
    # streaming in af-south-1 is not confirmed in local/regions.json: said, with how to confirm it
    assert "WARN  response streaming" in r.stdout and "bin/smoke" in r.stdout
    assert "OK    postgres CA bundle" in r.stdout and "OK    snapstart" in r.stdout
    assert r.stdout.rstrip().endswith("af-south-1: no blocker"), r.stdout
    assert sorted(set(lambda_endpoint.requests)) == [
        "/2016-08-19/account-settings", f"/2018-10-31/layers/{WEB_ADAPTER.format(region='af-south-1')}/versions/30"]


def test_what_would_fail_is_named_with_what_to_change(lambda_endpoint, tmp_path):
    r = _preflight("ap-southeast-6", "--parameter-overrides", "ChatReservedConcurrency=100",
                   "WebAdapterLayerVersion=99", endpoint=lambda_endpoint.url, tmp_path=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "FAIL  concurrency" in out and "Lambda keeps 100 unreserved" in out
    assert "set ChatReservedConcurrency=100 to 0 (unreserved), or ask for a higher 'Concurrent executions' quota" in out
    assert "FAIL  web adapter layer" in out and "ResourceNotFoundException" in out
    assert "FAIL  snapstart" in out  # not in Asia Pacific (New Zealand)
    # 100 reserved for chat is beyond DbMaxConnections=80
    assert "FAIL  connection budget" in out
    assert out.rstrip().endswith("FAIL (concurrency, connection budget, web adapter layer, snapstart)")


def test_a_production_profile_on_a_raised_quota_passes(lambda_endpoint, tmp_path):
    lambda_endpoint.quota = 1000
    r = _preflight("eu-west-1", "--parameter-overrides", "ChatReservedConcurrency=40", "EventsReservedConcurrency=20",
                   "ApiReservedConcurrency=15", "AccountReservedConcurrency=2", "ScheduledReservedConcurrency=1",
                   "MigrateReservedConcurrency=1", "SpoolReservedConcurrency=1", endpoint=lambda_endpoint.url,
                   tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "quota 1000, unreserved now 1000; this stack reserves 80" in r.stdout
    assert "at most 80 connections of DbMaxConnections=80" in r.stdout
