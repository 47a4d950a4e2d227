"""The X-Ray trace ids of the sample events (events/*.json) have the form AWS uses:
``Root=1-{8 hex digits: the request's epoch seconds}-{24 hex digits}``, optionally followed by
``;Parent={16 hex digits}`` and ``;Sampled=0|1``. Every string anywhere in an event that holds a trace
id (headers, multiValueHeaders, the request context, ...) is checked; a proxy event carries the same
one in both header maps, its time is the request's (requestTime, requestTimeEpoch), and no two events
share one. Pure: reads files only (running every event through the invoker: test_invoke.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted((ROOT / "events").glob("*.json"))
TRACE_ID = re.compile(r"Root=1-(?P<epoch>[0-9a-f]{8})-[0-9a-f]{24}(;Parent=[0-9a-f]{16})?(;Sampled=[01])?")
HEADER = "X-Amzn-Trace-Id"


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its path; a key's own name is part of the path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def trace_ids(event: dict) -> list[tuple[str, str]]:
    """Every (path, value) that is, or names itself, a trace id."""
    return [(path, value) for path, value in strings(event)
            if "Root=" in value or re.search(r"trace", path.rsplit("/", 1)[-1], re.IGNORECASE)]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_sample_events_are_there():
    assert len(EVENTS) >= 20 and any(trace_ids(load(p)) for p in EVENTS)


@pytest.mark.parametrize("path", EVENTS, ids=[p.name for p in EVENTS])
def test_every_trace_id_has_aws_s_form(path):
    event = load(path)
    for where, value in trace_ids(event):
        assert TRACE_ID.fullmatch(value), (
            f"{path.name}{where}: {value!r} is not Root=1-<8 hex digits>-<24 hex digits>[;Parent=<16 hex>][;Sampled=0|1]")


@pytest.mark.parametrize("path", EVENTS, ids=[p.name for p in EVENTS])
def test_a_proxy_event_has_one_trace_id_at_its_request_time(path):
    event = load(path)
    if "httpMethod" not in event:  # EventBridge and the migrate function's events come with none
        assert not trace_ids(event), f"{path.name}: a trace id in an event that is not an API Gateway request"
        return
    header = event["headers"].get(HEADER)
    assert header, f"{path.name}: API Gateway always sends {HEADER}"
    assert event["multiValueHeaders"].get(HEADER) == [header], f"{path.name}: headers and multiValueHeaders differ"
    context = event["requestContext"]
    seconds = int(datetime.strptime(context["requestTime"], "%d/%b/%Y:%H:%M:%S %z").timestamp())
    assert int(TRACE_ID.fullmatch(header)["epoch"], 16) == seconds, \
        f"{path.name}: the trace id's time is not the request's ({context['requestTime']})"
    assert context["requestTimeEpoch"] // 1000 == seconds, f"{path.name}: requestTimeEpoch is not requestTime"


def test_no_two_requests_share_a_trace_id():
    seen: dict[str, str] = {}
    for path in EVENTS:
        event = load(path)
        header = event["headers"].get(HEADER) if "httpMethod" in event else None
        if header:
            assert header not in seen, f"{path.name} and {seen[header]} have the same trace id {header}"
            seen[header] = path.name
