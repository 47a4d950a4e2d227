"""Turn metrics as CloudWatch EMF: emitted in Lambda, silent locally, never breaking a turn."""

from __future__ import annotations

from decimal import Decimal

from chatcore import observability
from tests.support.metrics import emf_lines


OUTCOME = {"event": "TurnCompleted", "session_id": "s-1", "run_id": "r-1",
           "usage": {"input_tokens": 1200, "output_tokens": 800, "cache_read_tokens": 30000,
                     "cache_write_tokens": 5000},
           "cost": {"usd": "0.0433500000", "zar": "0.7803000000"}, "tool_errors": 0, "member_errors": [],
           "duration_ms": 1234}


def test_record_turn_emits_emf_in_lambda(monkeypatch, capsys):
    monkeypatch.setattr(observability, "in_lambda", lambda: True)
    observability.record_turn(OUTCOME)
    observability.record_turn({**OUTCOME, "event": "TurnFailed", "run_id": "r-2",
                               "error": {"code": "model-error:model_provider_error", "message": "x"}})
    ok, failed = emf_lines(capsys.readouterr().out)
    names = {m["Name"]: m["Unit"] for m in ok["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"Turns": "Count", "TurnsFailed": "Count", "TurnsPaused": "Count", "InputTokens": "Count",
                     "OutputTokens": "Count", "CacheReadTokens": "Count", "CacheWriteTokens": "Count",
                     "CostUSD": "None", "CostZAR": "None", "TurnLatency": "Milliseconds"}
    assert ok["_aws"]["CloudWatchMetrics"][0]["Namespace"] == observability.NAMESPACE
    assert (ok["InputTokens"], ok["OutputTokens"], ok["CacheReadTokens"], ok["CacheWriteTokens"]) == \
        ([1200.0], [800.0], [30000.0], [5000.0])
    assert Decimal(str(ok["CostUSD"][0])) == Decimal("0.04335") and Decimal(str(ok["CostZAR"][0])) == Decimal("0.7803")
    assert ok["TurnLatency"] == [1234.0] and ok["TurnsFailed"] == [0.0] and ok["run_id"] == "r-1"
    assert failed["TurnsFailed"] == [1.0] and failed["error_code"] == "model-error:model_provider_error"
    assert "error_code" not in ok  # each turn is its own metric set


def test_record_turn_is_silent_locally_and_never_raises(monkeypatch, capsys):
    monkeypatch.setattr(observability, "in_lambda", lambda: False)
    observability.record_turn(OUTCOME)
    assert emf_lines(capsys.readouterr().out) == []
    monkeypatch.setattr(observability, "in_lambda", lambda: True)
    observability.record_turn(None)  # type: ignore[arg-type]
    observability.record_turn({"event": "TurnCompleted", "usage": {"input_tokens": "not a number"}})
    observability.record_turn(OUTCOME)  # a bad call leaves nothing behind for the next turn
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 1 and lines[0]["run_id"] == "r-1"


def test_each_log_line_is_written_once_in_lambda():
    """Powertools' logger and the stdlib loggers' JSON handler (chatcore.observability) each write a
    line once: nothing is passed up to a second handler."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import logging\nfrom chatcore.observability import logger\n"
            "logger.info('powertools line')\nlogging.getLogger('chatcore.x').warning('stdlib line')\n")
    env = {"AWS_LAMBDA_FUNCTION_NAME": "api", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": f"{root / 'layers' / 'core'}"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert out.count("powertools line") == 1 and out.count("stdlib line") == 1, out
