"""Push notifications as the local stack's SNS (moto, in this process) recorded them: what was
published to the endpoint of a device token, parsed as the phone's platform would read it; and the
fixture that puts SNS behind a proxy that stalls (SNS down for the served API)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

ACCOUNT = "123456789012"


def _backend():
    from moto.sns.models import sns_backends

    from chatcore.config import get_settings

    return sns_backends[ACCOUNT][get_settings().aws_region or "us-east-1"]


def endpoint_of(token: str):
    """moto's endpoint of a device token (None when there is none)."""
    return next((e for e in list(_backend().platform_endpoints.values()) if e.token == token), None)


def pushes_to(token: str) -> list[dict]:
    """What was published to the token's endpoint: each as {"title", "body", "data", "platform"}."""
    endpoint = endpoint_of(token)
    if endpoint is None:
        return []
    found = []
    for raw in list(endpoint.messages.values()):
        message = json.loads(raw)
        platform = endpoint.application.platform
        if platform == "GCM":
            m = json.loads(message["GCM"])["fcmV1Message"]["message"]
            found.append({"title": m["notification"]["title"], "body": m["notification"]["body"],
                          "data": m["data"], "collapse": m["android"]["collapse_key"], "platform": platform})
        else:
            p = json.loads(message[platform])
            alert = p.pop("aps")
            found.append({"title": alert["alert"]["title"], "body": alert["alert"]["body"], "data": p,
                          "collapse": alert["thread-id"], "platform": platform})
    return found


def wait_for_pushes(token: str, count: int = 1, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pushes_to(token)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return pushes_to(token)


def new_token() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex  # an APNs token: 64 hex digits


def register(user, token: str, *, platform: str = "apns", locale: str | None = None) -> dict:
    body = {"platform": platform, "token": token, "app_version": "1.0.0"}
    if locale:
        body["locale"] = locale
    r = user.client.post("/me/devices", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture()
def sns_behind_a_proxy(stack, monkeypatch):
    """The process's SNS client pointed at a proxy in front of moto (PUSH_TIMEOUT=1), restored after."""
    from chatcore.notify import sns
    from tests.support.faults import client_behind_a_proxy

    yield from client_behind_a_proxy(stack, monkeypatch, endpoint_var="AWS_ENDPOINT_URL_SNS",
                                     timeout_var="PUSH_TIMEOUT", timeout="1", forget=sns.forget_client)
