"""Powertools Logger, Metrics and Tracer: created once per process, imported everywhere else.

Configured by the environment template.yaml sets: ``POWERTOOLS_SERVICE_NAME`` (one per function),
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``. Outside Lambda (no
``AWS_LAMBDA_FUNCTION_NAME``) nothing is printed: metrics are dropped, the tracer is disabled
(Powertools does that itself) and logging is left as the process configured it.

Metrics go out as CloudWatch embedded metric format (EMF) lines on stdout, which Lambda ships to
CloudWatch Logs and CloudWatch turns into metrics. A turn is flushed on its own as it ends: the
streaming function has no handler for ``@metrics.log_metrics`` to wrap (the Web Adapter runs it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "agent-chat"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "AgentChat"

logger = Logger(service=SERVICE)
# Powertools' logger writes its own lines: passed up to the root logger as well (which has a handler
# in Lambda: the runtime's, or ours below), every line would be written twice.
logging.getLogger(SERVICE).propagate = False
_tracer: Any = None


def __getattr__(name: str) -> Any:
    # The Tracer loads the X-Ray SDK and botocore (~0.15 s): created only for the handlers that use it
    # (`from chatcore.observability import tracer`), not for every function that logs or counts turns.
    global _tracer
    if name == "tracer":
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer(service=SERVICE)
        return _tracer
    raise AttributeError(name)
# Turns flush their own metric set, so they never mix with a handler's shared one.
_turn_metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
_turn_lock = threading.Lock()

log = logging.getLogger(__name__)


def in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _json_logging_in_lambda() -> None:
    """Under the Web Adapter the app is a plain process: give stdlib loggers Powertools' JSON lines."""
    root = logging.getLogger()
    if not in_lambda() or root.handlers:
        return
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(LambdaPowertoolsFormatter(service=SERVICE))
    root.addHandler(handler)
    root.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO")
    # httpx logs every request URL at INFO, presigned S3 URLs (signatures) included: keep them out.
    logging.getLogger("httpx").setLevel(logging.WARNING)


_json_logging_in_lambda()


def _number(value: Any) -> float:
    # Money stays Decimal everywhere else; EMF values are JSON numbers, so this is the one float.
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return 0.0


def record_turn(outcome: dict) -> None:
    """Emit a finished turn's metrics: tokens of each kind, cost in USD and ZAR, latency, failures.

    ``outcome`` is the turn's final event (``TurnCompleted`` / ``TurnFailed``) with its ``event``
    name. Never raises: metrics must not break a turn that is already stored.
    """
    try:
        usage = outcome.get("usage") or {}
        cost = outcome.get("cost") or {}
        failed = outcome.get("event") == "TurnFailed"  # a stopped turn (TurnCancelled) did not fail
        # a turn that paused for the user's approval is counted once, when its continuation ends (its
        # usage and cost are emitted by each stretch: the pause's, then the continuation's)
        paused = outcome.get("event") == "TurnPaused"
        with _turn_lock:
            m = _turn_metrics
            m.add_metric(name="Turns", unit=MetricUnit.Count, value=0 if paused else 1)
            m.add_metric(name="TurnsPaused", unit=MetricUnit.Count, value=1 if paused else 0)
            m.add_metric(name="TurnsFailed", unit=MetricUnit.Count, value=1 if failed else 0)
            m.add_metric(name="InputTokens", unit=MetricUnit.Count, value=int(usage.get("input_tokens") or 0))
            m.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=int(usage.get("output_tokens") or 0))
            m.add_metric(name="CacheReadTokens", unit=MetricUnit.Count,
                         value=int(usage.get("cache_read_tokens") or 0))
            m.add_metric(name="CacheWriteTokens", unit=MetricUnit.Count,
                         value=int(usage.get("cache_write_tokens") or 0))
            m.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=_number(cost.get("usd", 0)))
            m.add_metric(name="CostZAR", unit=MetricUnit.NoUnit, value=_number(cost.get("zar", 0)))
            m.add_metric(name="TurnLatency", unit=MetricUnit.Milliseconds,
                         value=int(outcome.get("duration_ms") or 0))
            # Searchable in Logs Insights beside the metrics; not dimensions (unbounded values).
            m.add_metadata(key="session_id", value=str(outcome.get("session_id")))
            m.add_metadata(key="run_id", value=str(outcome.get("run_id")))
            if failed:
                m.add_metadata(key="error_code", value=str((outcome.get("error") or {}).get("code")))
            if in_lambda():
                m.flush_metrics()
            else:
                m.clear_metrics()
    except Exception:  # noqa: BLE001 - see docstring
        log.warning("could not record the turn's metrics", exc_info=True)
        try:
            _turn_metrics.clear_metrics()
        except Exception:  # noqa: BLE001
            pass


def record_push(kind: str, *, sent: int, failed: int) -> None:
    """Count pushes sent and failed (``PushesSent``, ``PushFailures``: the template alarms on failures).
    Never raises: a push never breaks anything."""
    _flush_counts("push", {"PushesSent": sent, "PushFailures": failed}, {"push_kind": kind})


# The log line of a refusal by a plan's limit: the template's Contributor Insights rule counts them
# per user (RateLimitRefusalsRule) and alarms when one user is refused too often in an hour.
RATE_LIMITED_LOG = "rate-limited"


def record_limit_refusal(sub: str, limit: str) -> None:
    """A request refused by a per-user limit (a turn by its plan's, another route by the request
    limit): one JSON log line naming the user (``user``: their sub, what the operator's commands
    take) and the limit, and the ``RateLimitRefusals`` metric. Never raises."""
    log.warning(RATE_LIMITED_LOG, extra={"event": RATE_LIMITED_LOG, "user": sub, "limit": limit})
    _flush_counts("limit refusal", {"RateLimitRefusals": 1}, {"limit": limit})


def _flush_counts(what: str, counts: dict[str, int], metadata: dict[str, str]) -> None:
    """Flush ``counts`` (metric name: count) with ``metadata`` as one metric set of their own. Never raises."""
    try:
        with _turn_lock:
            m = _turn_metrics
            for name, value in counts.items():
                m.add_metric(name=name, unit=MetricUnit.Count, value=value)
            for key, value in metadata.items():
                m.add_metadata(key=key, value=value)
            if in_lambda():
                m.flush_metrics()
            else:
                m.clear_metrics()
    except Exception:  # noqa: BLE001 - see docstring
        log.warning("could not record the %s metrics", what, exc_info=True)
        try:
            _turn_metrics.clear_metrics()
        except Exception:  # noqa: BLE001
            pass


# ---- step timing: public hooks the benchmark (or a profiler) observes; nothing patched by name

StepObserver = Callable[[str, float], None]
_step_observers: list[StepObserver] = []


def observe_steps(callback: StepObserver) -> Callable[[], None]:
    """Call ``callback(step, milliseconds)`` as each timed step ends; returns a function that stops it.

    Steps: ``begin`` and ``store`` (a turn's first and last transaction), ``S3 upload`` and
    ``S3 read`` (a photo's bytes). With no observer a step costs two clock reads.
    """
    _step_observers.append(callback)
    return lambda: _step_observers.remove(callback)


@contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        if _step_observers:
            ms = (time.perf_counter() - started) * 1000
            for callback in list(_step_observers):
                callback(step, ms)
