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
