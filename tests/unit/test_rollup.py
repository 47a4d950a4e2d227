"""The daily rollup without a database: the sample EventBridge events, the handler's range checks
(before it connects), and the UUIDv7 floor the incremental rollup scans from."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta

import pytest

from chatcore.money import rollup
from tests.support import costdata

EVENTS = costdata.ROOT / "events"
HANDLER = costdata.ROOT / "functions" / "scheduled" / "handler.py"


def test_sample_events_are_eventbridge_events():
    scheduled = json.loads((EVENTS / "scheduled-run.json").read_text())
    ranged = json.loads((EVENTS / "scheduled-range.json").read_text())
    for event in (scheduled, ranged):
        assert {"version", "id", "detail-type", "source", "account", "time", "region", "resources",
                "detail"} <= set(event)
    assert scheduled["detail-type"] == "Scheduled Event" and scheduled["source"] == "aws.events"
    assert scheduled["detail"] == {} and scheduled["resources"][0].startswith("arn:aws:events:")
    assert ranged["detail"] == {"from": "2026-10-01", "to": "2026-10-31"}


def test_handler_refuses_half_a_range(dummy_settings):  # the handler reads the settings at import
    spec = importlib.util.spec_from_file_location("rollup_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match="both"):
        module.handler({"detail-type": "Rollup Range Requested", "detail": {"from": "2026-10-01"}}, None)
    with pytest.raises(ValueError, match="not a date"):
        module.handler({"detail": {"from": "2026-10-01", "to": "yesterday"}}, None)
    with pytest.raises(ValueError, match="after"):
        module.handler({"detail": {"from": "2026-10-02", "to": "2026-10-01"}}, None)


def test_uuid7_floor_orders_like_uuid7_ids():
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    floor = rollup.uuid7_floor(at)
    assert costdata.uuid7_at(at - timedelta(milliseconds=1)) < floor <= costdata.uuid7_at(at)
    assert str(floor) < str(costdata.uuid7_at(at + timedelta(milliseconds=1)))
