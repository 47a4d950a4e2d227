"""The caller's phones, for push notifications (``chatcore.notify``): POST /me/devices (register on
every launch: the same token is the same device), GET /me/devices, DELETE /me/devices/{id}. Someone
else's device is 404; a token registered by another user moves to the caller."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response

from chatcore.notify import devices
from chatcore.web.dependencies import Caller
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.wire.schemas import DeviceIn, DeviceList, DeviceOut

router = APIRouter(tags=["devices"])


def device_out(row: dict[str, Any]) -> DeviceOut:
    return DeviceOut(id=row["id"], platform=row["platform"], token=row["token"], app_version=row["app_version"],
                     locale=row["locale"], push_enabled=row["endpoint_arn"] is not None,
                     created_at=row["created_at"], updated_at=row["updated_at"])


@router.post("/me/devices", response_model=DeviceOut, status_code=201, responses={
    **PROBLEM_RESPONSES, 200: {"model": DeviceOut, "description": "the caller's device with this token, updated"}})
def register_device(body: DeviceIn, sub: Caller, response: Response) -> DeviceOut:
    """Register the phone for push notifications (call it on every launch and when the platform gives a
    new token). 201 with a new id for a token new to the caller (a token another user registered moves to
    the caller: that user's device is gone); 200 with the same id when the caller registered this token
    before (its app version and locale updated)."""
    row, created = devices.register(sub, platform=body.platform, token=body.token, app_version=body.app_version,
                                    locale=body.locale)
    response.status_code = 201 if created else 200
    return device_out(row)


@router.get("/me/devices", response_model=DeviceList, responses=PROBLEM_RESPONSES)
def list_devices(sub: Caller) -> DeviceList:
    """The caller's registered phones, oldest first."""
    return DeviceList(items=[device_out(r) for r in devices.list_devices(sub)])


@router.delete("/me/devices/{device_id}", status_code=204, responses=PROBLEM_RESPONSES)
def delete_device(device_id: UUID, sub: Caller) -> Response:
    """Stop push notifications to a phone (sign-out): the device and its SNS endpoint are deleted."""
    devices.delete(sub, device_id)
    return Response(status_code=204)
