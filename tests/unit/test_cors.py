"""CORS without a server: the origins setting as it is read and refused, and an error that escapes
the app (a bug: Starlette's own 500 handler sits outside every middleware) still answered as a 500
problem that names the origin. The served API is checked in tests/integration/test_cors.py."""

from __future__ import annotations

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from chatcore.config import get_settings
from chatcore.web.app import create_web_app
from chatcore.web.cors import allowed_origins, allows


def test_the_origins_setting_is_a_comma_separated_list_compared_without_case_or_trailing_slash():
    origins = allowed_origins(" https://App.example/, http://localhost:5173 ,,")
    assert origins == {"https://app.example", "http://localhost:5173"}
    assert allows(origins, "https://app.example") and allows(origins, "HTTPS://APP.EXAMPLE")
    assert not allows(origins, "https://app.example.evil") and not allows(origins, None)
    assert allows(allowed_origins("*"), "https://anyone.example") and not allowed_origins("")


@pytest.mark.parametrize("value", ["app.example", "https://app.example/path", "https://*.example", "ftp://x"])
def test_an_origin_that_is_not_one_stops_the_function_at_start_up(settings_env, value):
    settings_env.setenv("DATABASE_URL", "postgresql://unused/x")
    settings_env.setenv("MEDIA_BUCKET", "b")
    settings_env.setenv("CORS_ALLOWED_ORIGINS", f"https://ok.example,{value}")
    get_settings.cache_clear()
    with pytest.raises(RuntimeError, match=r"CORS_ALLOWED_ORIGINS must be origins .* got '.*'"):
        get_settings()


def test_an_error_that_escapes_the_app_is_a_500_problem_that_names_the_origin(settings_env):
    settings_env.setenv("DATABASE_URL", "postgresql://unused/x")
    settings_env.setenv("MEDIA_BUCKET", "b")
    settings_env.setenv("CORS_ALLOWED_ORIGINS", "https://app.example")
    get_settings.cache_clear()

    async def broken(request):
        raise ZeroDivisionError("a bug")

    app = create_web_app(routes=[Route("/broken", broken)])
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/broken", headers={"Origin": "https://app.example"})
    assert r.status_code == 500 and r.json()["code"] == "internal-error"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["access-control-allow-origin"] == "https://app.example"
