"""SnapStart on the chat function: the Web Adapter's hooks around the snapshot (chatcore.web.snapstart).

A snapshot is shared by every sandbox restored from it: before the checkpoint the turn path is
imported and nothing holding a connection, a credential or a secret is kept; after each restore the
random state is new."""

from __future__ import annotations

import random
import sys

import pytest
from starlette.testclient import TestClient

from chatcore.web import snapstart

HOOKS = {snapstart.BEFORE_CHECKPOINT: "/snapstart/before-checkpoint", snapstart.AFTER_RESTORE: "/snapstart/after-restore"}


def test_the_hooks_exist_only_where_the_adapter_is_configured_for_them(monkeypatch):
    for name in HOOKS:
        monkeypatch.delenv(name, raising=False)
    assert snapstart.hook_routes() == []  # bin/serve, tests: no unauthenticated state-changing route
    for name, path in HOOKS.items():
        monkeypatch.setenv(name, path)
    routes = snapstart.hook_routes()
    assert [(r.path, r.methods) for r in routes] == [
        ("/snapstart/before-checkpoint", {"POST"}), ("/snapstart/after-restore", {"POST"})]


def test_before_checkpoint_keeps_the_turn_path_and_drops_every_connection(user, standin, monkeypatch):
    from chatcore import db
    from chatcore.media import s3
    from chatcore.turns import claude, registry
    from chatcore.web.app import create_web_app

    sid = user.new_session()
    r, events = user.turn(sid, message="What is 12 * 7?")
    assert events[-1]["event"] == "TurnCompleted"
    # the turn left what a sandbox caches: a pool, an S3 client, models and agents
    assert db._pool is not None and claude.claude.cache_info().currsize and registry._conversations

    for name, path in HOOKS.items():
        monkeypatch.setenv(name, path)
    with TestClient(create_web_app(routes=snapstart.hook_routes())) as client:
        r = client.post("/snapstart/before-checkpoint")
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert db._pool is None and db._rds is None and s3.CLIENT.client is None
        assert claude.claude.cache_info().currsize == 0 and registry._conversations == {}
        assert {"agno.agent", "agno.team", "anthropic", "PIL.Image"} <= set(sys.modules)

        r = client.post("/snapstart/after-restore")
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert db._pool is None and claude.claude.cache_info().currsize == 0

    # the first turn after a restore makes its connections, clients and agents anew
    r, events = user.turn(sid, message="What is 6 * 7?")
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", events[-1]
    assert "42" in "".join(e["data"].get("content") or "" for e in events if e["event"] == "RunContent")
    assert db._pool is not None


def _restored_draws(restore: bool) -> list[float]:
    """What two sandboxes restored from one snapshot draw from ``random``, after (or without) the
    after-restore hook. A restore puts the snapshot's memory back, the generator's state with it
    (a fork does not model it: Python reseeds ``random`` in a forked child itself)."""
    random.seed(20261201)
    snapshot = random.getstate()
    draws = []
    for _ in range(2):
        random.setstate(snapshot)  # a sandbox restored from the snapshot
        if restore:
            snapstart.reseed()
        draws.append(random.random())
    return draws


def test_restored_sandboxes_do_not_share_the_random_state():
    # without the hook two sandboxes draw the same "random" numbers (retry jitter in lockstep)
    first, second = _restored_draws(restore=False)
    assert first == second
    first, second = _restored_draws(restore=True)
    assert first != second


@pytest.mark.parametrize("path", list(HOOKS.values()))
def test_the_hooks_answer_only_post(path, monkeypatch):
    from chatcore.web.app import create_web_app

    for name, p in HOOKS.items():
        monkeypatch.setenv(name, p)
    with TestClient(create_web_app(routes=snapstart.hook_routes())) as client:
        assert client.get(path).status_code == 405


def test_the_hooks_forget_powertools_providers_boto3_s_session_and_every_aws_client(stack, monkeypatch):
    """A secret read through Powertools leaves a provider holding a boto3 client (a connection pool and
    the credentials it was made with): neither may be in the snapshot or shared by restored sandboxes."""
    import socket
    import uuid

    import boto3
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from moto.server import ThreadedMotoServer

    from chatcore import config
    from chatcore.account import jobs

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        DEFAULT_PROVIDERS.clear()
        secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint)
        arn = secrets.create_secret(Name=f"snap-{uuid.uuid4().hex[:8]}", SecretString="sk-ant-snap")["ARN"]
        assert config.get_secret(arn) == "sk-ant-snap"
        provider = DEFAULT_PROVIDERS["secrets"]
        assert boto3.DEFAULT_SESSION is not None  # boto3.client above made the default session
        jobs._lambda_client()
        assert jobs.LAMBDA.client is not None

        snapstart.forget_connections()
        assert DEFAULT_PROVIDERS == {} and boto3.DEFAULT_SESSION is None and jobs.LAMBDA.client is None
        # the next read makes a provider of its own
        assert config.get_secret(arn) == "sk-ant-snap" and DEFAULT_PROVIDERS["secrets"] is not provider
    finally:
        DEFAULT_PROVIDERS.clear()
        server.stop()
