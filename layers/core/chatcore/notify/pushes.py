"""When a push is sent, what it says, and the claim that sends each one once.

Three kinds (the payload's ``kind``), each sent after the turn is stored, outside any transaction:

- ``turn_finished``: a turn's final event was written while its client was gone (the request's
  connection closed before the final event was sent) and no resumed stream (the events route) read
  that final event within ``PUSH_DELIVERY_GRACE_SECONDS``: the events route records
  ``runs.final_delivered_at`` when it sends a final event;
- ``approval_needed``: the turn paused for the user's approval (each pause of a run once);
- ``budget``: the month's spend crossed 80 % or 100 % of the user's budget (once each per month).

Each is claimed first (``store.devices.claim``: one INSERT, the winner sends), so a retry, a second
instance or a follower racing the chat function never sends it twice. Sending never raises: a failure
is logged and counted (the ``PushFailures`` metric, alarmed in template.yaml), never retried; a
device whose endpoint the platform disabled is deleted.

What the lock screen shows: a generic title and body by default (no chat content), the first
``PREVIEW_CHARS`` of the answer (or the action's one-line summary) only when the user opted in
(``/me/settings`` ``push_preview``); English or Afrikaans from the device's locale. A session's
pushes collapse into one notification (APNs collapse id, FCM collapse_key: the session id).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from chatcore import db, observability
from chatcore.config import get_settings
from chatcore.money.budgets import WARNING_PERCENTS, month_bounds
from chatcore.notify import sns
from chatcore.store import devices as device_rows, usage

log = logging.getLogger(__name__)

PREVIEW_CHARS = 100
BUDGET_THRESHOLDS = WARNING_PERCENTS

TEXTS = {
    "en": {
        "turn_finished": ("Your answer is ready", "Open the app to read it."),
        "approval_needed": ("Approval needed", "An action is waiting for your approval."),
        "budget_80": ("Budget", "You have used 80% of this month's budget."),
        "budget_100": ("Budget reached", "You have used this month's budget."),
    },
    "af": {
        "turn_finished": ("Jou antwoord is gereed", "Maak die app oop om dit te lees."),
        "approval_needed": ("Goedkeuring nodig", "'n Aksie wag vir jou goedkeuring."),
        "budget_80": ("Begroting", "Jy het 80% van hierdie maand se begroting gebruik."),
        "budget_100": ("Begroting bereik", "Jy het hierdie maand se begroting opgebruik."),
    },
}


def language(locale: str | None) -> str:
    """The language of a device's locale (``af``, ``af-ZA``, ``af_ZA``: Afrikaans); English otherwise."""
    tag = (locale or "").replace("_", "-").split("-")[0].lower()
    return tag if tag in TEXTS else "en"


def preview_of(text: str | None) -> str | None:
    text = " ".join((text or "").split())
    if not text:
        return None
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1].rstrip() + "…"


@dataclass
class Push:
    """One notification, as the app reads it (``data``) and as the lock screen shows it."""

    kind: str
    session_id: UUID | None
    run_id: UUID | None
    last_event_id: int | None
    text_key: str  # which TEXTS entry
    preview: str | None = None  # shown only when the user opted in
    extra: dict[str, str] = field(default_factory=dict)

    def data(self) -> dict[str, str]:
        """The payload's data: strings only (FCM's data is a map of strings)."""
        data = {"kind": self.kind, "session_id": str(self.session_id or ""), "run_id": str(self.run_id or ""),
                "last_event_id": "" if self.last_event_id is None else str(self.last_event_id)}
        return {**data, **self.extra}

    def message(self, locale: str | None, show_preview: bool) -> dict[str, str]:
        """The SNS message (MessageStructure=json): a payload for each platform, and a default."""
        title, body = TEXTS[language(locale)][self.text_key]
        if show_preview and self.preview:
            body = self.preview
        collapse = str(self.session_id or self.kind)
        data = self.data()
        apns = json.dumps({"aps": {"alert": {"title": title, "body": body}, "sound": "default",
                                   "thread-id": collapse}, **data})
        fcm = json.dumps({"fcmV1Message": {"message": {
            "notification": {"title": title, "body": body}, "data": data,
            "android": {"collapse_key": collapse, "priority": "high"},
            "apns": {"headers": {"apns-collapse-id": collapse[:64]}}}}})
        return {"default": title, "APNS": apns, "APNS_SANDBOX": apns, "GCM": fcm}


def _failed(kind: str, reason: str) -> None:
    observability.record_push(kind, sent=0, failed=1)
    log.warning("push %s not sent: %s", kind, reason)


def _send(user_id: UUID, devices: list[dict[str, Any]], push: Push, show_preview: bool) -> int:
    """Send ``push`` to each device; how many it reached. Never raises."""
    sent = failed = 0
    for device in devices:
        if not sns.available():
            failed += 1
            log.warning("push %s to device %s skipped: SNS was unreachable moments ago", push.kind, device["id"])
            continue
        arn = device["endpoint_arn"]
        try:
            if arn is None:  # SNS was unreachable when it was registered: its endpoint is made now
                arn = sns.create_endpoint(device["platform"], device["token"])
                if arn is None:
                    continue  # no application for its platform: stored, never sent to
                with db.connection() as conn:
                    device_rows.set_endpoint(conn, device["id"], arn)
            message_id = sns.publish(arn, push.message(device["locale"], show_preview),
                                     collapse_id=str(push.session_id or push.kind))
            sent += 1
            log.info("push sent: %s to %s device %s (session %s, run %s, last event %s) message %s", push.kind,
                     device["platform"], device["id"], push.session_id, push.run_id, push.last_event_id, message_id)
        except sns.EndpointDisabled:
            failed += 1
            log.info("device %s: its endpoint is disabled by the platform; deleted", device["id"])
            sns.delete_endpoint(arn)
            try:
                with db.connection() as conn:
                    device_rows.delete_disabled(conn, device["id"], arn)
            except Exception:  # noqa: BLE001
                log.warning("could not delete the disabled device %s", device["id"], exc_info=True)
        except Exception as e:  # noqa: BLE001 - a push never fails anything
            failed += 1
            log.warning("push %s to device %s failed: %s: %s", push.kind, device["id"], e.__class__.__name__, e)
    observability.record_push(push.kind, sent=sent, failed=failed)
    return sent


def _deliver(user_id: UUID, push: Push, key: str, *, unseen_run: UUID | None = None,
             devices: list[dict[str, Any]] | None = None) -> bool:
    """Claim ``push`` (once per user, kind and key) and send it to the user's devices; whether it was sent."""
    with db.connection() as conn:
        if devices is None:
            devices = device_rows.devices_of_user(conn, user_id)
        if not devices:
            return False
        won = (device_rows.claim_unseen(conn, user_id, unseen_run) if unseen_run is not None
               else device_rows.claim(conn, user_id, push.kind, key))
        if not won:
            return False
        show_preview = device_rows.preview_of_user(conn, user_id)
    sent = _send(user_id, devices, push, show_preview)  # no connection held while SNS is called
    with db.connection() as conn:
        device_rows.count_sent(conn, user_id, push.kind, key, sent)
    return sent > 0


@dataclass
class FinishedTurn:
    """What the chat function knows of a turn once it is stored (plain data: no import of ``turns``)."""

    session_id: UUID
    run_id: UUID
    status: str  # completed, failed, cancelled, paused
    final_event_id: int
    last_sent_id: int  # the last event this request's client was sent (0: none)
    answer: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)


def after_turn(turn: FinishedTurn) -> None:
    """The pushes a stored turn calls for (run by the chat function after its final event). Never raises."""
    if not sns.configured():
        return
    try:
        with db.connection() as conn:
            user_id = device_rows.user_of_session(conn, turn.session_id)
            devices = device_rows.devices_of_user(conn, user_id) if user_id is not None else []
        if not devices:
            return
        if turn.status == "paused":
            summaries = [p.get("summary") or p.get("tool") or "" for p in turn.pending]
            summary = "; ".join(s for s in summaries if s)
            push = Push("approval_needed", turn.session_id, turn.run_id, turn.last_sent_id or turn.final_event_id,
                        "approval_needed", preview=preview_of(summary),
                        extra={"summary": summary[:PREVIEW_CHARS * 2], "paused_event_id": str(turn.final_event_id)})
            _deliver(user_id, push, f"{turn.run_id}:{turn.final_event_id}", devices=devices)
        elif turn.last_sent_id < turn.final_event_id:  # its client was gone before the final event
            time.sleep(get_settings().push_delivery_grace_seconds)  # a resumed stream may read it meanwhile
            push = Push("turn_finished", turn.session_id, turn.run_id, turn.last_sent_id, "turn_finished",
                        preview=preview_of(turn.answer),
                        extra={"status": turn.status, "final_event_id": str(turn.final_event_id)})
            _deliver(user_id, push, str(turn.run_id), unseen_run=turn.run_id, devices=devices)
        _budget(user_id, turn, devices)
    except Exception:  # noqa: BLE001 - a push never fails a turn
        observability.record_push("any", sent=0, failed=1)
        log.warning("the pushes of turn %s could not be sent", turn.run_id, exc_info=True)


def _budget(user_id: UUID, turn: FinishedTurn, devices: list[dict[str, Any]]) -> None:
    """A ``budget`` push when the month's spend has crossed 80 % or 100 % of the budget (the highest
    one crossed; each threshold is claimed once per month)."""
    start, end = month_bounds()
    with db.connection() as conn:
        row = usage.budget_and_spend(conn, user_id, start, end)
    if row is None or row["monthly_budget_zar"] is None:
        return
    budget, spent = Decimal(row["monthly_budget_zar"]), Decimal(row["spent"])
    if budget <= 0:  # no turn runs under a budget of nothing: nothing to warn of
        return
    crossed = [t for t in BUDGET_THRESHOLDS if spent >= budget * t / 100]
    if not crossed:
        return
    month = start.strftime("%Y-%m")
    top = crossed[-1]
    with db.connection() as conn:  # a threshold passed over (80 and 100 at once) is claimed unsent
        for t in crossed[:-1]:
            device_rows.claim(conn, user_id, "budget", f"{month}:{t}")
    push = Push("budget", turn.session_id, turn.run_id, turn.final_event_id, f"budget_{top}",
                extra={"threshold": str(top), "month": month})
    _deliver(user_id, push, f"{month}:{top}", devices=devices)
