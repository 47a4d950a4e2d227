"""Settings read from the environment: a misconfigured database is refused when the settings are read
(at cold start), with a message naming what is missing. Pure: the environment only."""

from __future__ import annotations

import pytest

from chatcore import config


@pytest.mark.parametrize("env, message", [
    ({}, "DATABASE_URL is not set"),
    ({"DB_IAM_AUTH": "1", "DB_HOST": "h"}, "DB_IAM_AUTH=1 needs DB_USER, DB_NAME"),
])
def test_database_configuration_errors(monkeypatch, env, message):
    monkeypatch.setenv("MEDIA_BUCKET", "bucket")
    for k in ("DATABASE_URL", "DB_SECRET_ARN", "DB_IAM_AUTH", "DB_HOST", "DB_USER", "DB_NAME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    config.get_settings.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=message):
            config.get_settings()
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()


@pytest.mark.parametrize("value, message", [("-1", "RETENTION_DAYS must be 0 or more"),
                                            ("thirty", "RETENTION_DAYS must be an integer")])
def test_a_retention_period_that_is_no_number_of_days_is_refused(monkeypatch, value, message):
    monkeypatch.setenv("MEDIA_BUCKET", "bucket")
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused/x")
    monkeypatch.setenv("RETENTION_DAYS", value)
    config.get_settings.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=message):
            config.get_settings()
        monkeypatch.setenv("RETENTION_DAYS", "30")
        config.get_settings.cache_clear()
        assert config.get_settings().retention_days == 30
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
