"""Amazon SNS mobile push, boto3 only: a device's platform endpoint (created, re-enabled, deleted)
and a publish to it. One attempt per call with short timeouts (``PUSH_TIMEOUT``): a push is never
worth holding a turn's function for. When SNS cannot be reached, the process sends nothing for
``PUSH_BACKOFF_SECONDS`` (``available``): no storm of timeouts against a service that is down.

The platform applications are stack parameters (``PUSH_*_APPLICATION_ARN``); a platform without one
sends nothing (its devices are still stored), which ``announce`` says once at start-up.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

from chatcore import aws
from chatcore.config import get_settings

log = logging.getLogger(__name__)

PLATFORMS = ("apns", "apns_sandbox", "fcm")
# The key of a platform's payload in a MessageStructure=json message.
PAYLOAD_KEYS = {"apns": "APNS", "apns_sandbox": "APNS_SANDBOX", "fcm": "GCM"}

_lock = threading.Lock()
_down_until = 0.0
_announced = False


class EndpointDisabled(Exception):
    """The platform disabled the device's endpoint (the app was uninstalled, the token expired)."""


class Unreachable(Exception):
    """SNS did not answer (down, or slower than PUSH_TIMEOUT), or refused for a reason of its own."""


def application_arn(platform: str) -> str | None:
    s = get_settings()
    return {"apns": s.push_apns_application_arn, "apns_sandbox": s.push_apns_sandbox_application_arn,
            "fcm": s.push_fcm_application_arn}.get(platform)


def configured() -> bool:
    """Whether any platform application is configured (else nothing is ever sent)."""
    return any(application_arn(p) for p in PLATFORMS)


def announce() -> None:
    """Say once per process which platforms push notifications go to (none: devices are stored only)."""
    global _announced
    if _announced:
        return
    _announced = True
    on = [p for p in PLATFORMS if application_arn(p)]
    if on:
        log.info("push notifications: sent through SNS to %s", ", ".join(on))
    else:
        log.warning("push notifications: no SNS platform application is configured (PUSH_*_APPLICATION_ARN); "
                    "devices are stored and nothing is sent")


CLIENT = aws.Client("sns", lambda s: {"endpoint_url": s.sns_endpoint_url, "connect_timeout": s.push_timeout,
                                      "read_timeout": s.push_timeout,
                                      "retries": {"total_max_attempts": 1, "mode": "standard"}})


def client() -> Any:
    return CLIENT.get()


def forget_client() -> None:
    global _down_until
    CLIENT.forget()
    with _lock:
        _down_until = 0.0


def available() -> bool:
    """False while the process backs off after SNS could not be reached."""
    return time.monotonic() >= _down_until


def _unreachable(e: Exception) -> Unreachable:
    global _down_until
    _down_until = time.monotonic() + get_settings().push_backoff_seconds
    return Unreachable(f"{e.__class__.__name__}: {e}")


def _call(operation: str, **kwargs: Any) -> dict:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client(), operation)(**kwargs)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "EndpointDisabled":
            raise EndpointDisabled(str(e)) from e
        raise
    except BotoCoreError as e:  # no connection, a timeout: SNS is down for us
        raise _unreachable(e) from e


# SNS answers a token that has an endpoint with other attributes (a disabled one) with this message.
_EXISTING = re.compile(r"Endpoint (arn:\S+) already exists")


def create_endpoint(platform: str, token: str) -> str | None:
    """The device's platform endpoint (created, or the existing one of its token, enabled again); None
    when its platform has no application. Raises ``Unreachable`` or botocore's ``ClientError``."""
    from botocore.exceptions import ClientError

    app = application_arn(platform)
    if app is None:
        return None
    try:
        return _call("create_platform_endpoint", PlatformApplicationArn=app, Token=token)["EndpointArn"]
    except ClientError as e:
        found = _EXISTING.search(str(e))
        if found is None:
            raise
        arn = found.group(1)  # AWS's documented handling: the token came back, so its endpoint works again
        _call("set_endpoint_attributes", EndpointArn=arn, Attributes={"Token": token, "Enabled": "true"})
        return arn


def delete_endpoint(arn: str) -> None:
    """Delete an endpoint (idempotent); a failure is logged, never raised (a stale endpoint is harmless)."""
    try:
        _call("delete_endpoint", EndpointArn=arn)
    except Exception:  # noqa: BLE001
        log.warning("could not delete the SNS endpoint %s", arn, exc_info=True)


def publish(arn: str, message: dict[str, str], *, collapse_id: str) -> str:
    """Publish one push (``message``: the payload of each platform, MessageStructure=json); its
    MessageId. Raises ``EndpointDisabled``, ``Unreachable`` or botocore's ``ClientError``."""
    return _call("publish", TargetArn=arn, Message=json.dumps(message), MessageStructure="json", MessageAttributes={
        "AWS.SNS.MOBILE.APNS.COLLAPSE_ID": {"DataType": "String", "StringValue": collapse_id[:64]},
        "AWS.SNS.MOBILE.APNS.PUSH_TYPE": {"DataType": "String", "StringValue": "alert"},
    })["MessageId"]
