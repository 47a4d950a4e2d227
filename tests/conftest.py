"""Test fixtures: the real local stack (Postgres, moto S3 server, stand-in model) and the chat API
served by uvicorn on a real port. Nothing of agno, psycopg or the anthropic SDK is mocked.

Shared by every tier (tests/unit, tests/integration, tests/infra). The stack starts only when a test
requests a fixture that needs it (``stack`` and everything built on it are lazy, session-scoped), and
this module imports nothing heavy: the local stack, httpx and chatcore are imported by the fixtures
that use them, so collecting or running tests/unit never touches Postgres, S3 or the model.

The fixtures of ``pytest_plugins`` (tests/support) are shared the same way; the helpers tests share
are plain modules of tests/support."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# The helpers' asserts explain themselves as a test's do (imported below and by the test modules).
pytest.register_assert_rewrite("tests.support")

from tests.support.users import User  # noqa: E402

pytest_plugins = [
    "tests.support.faults",
    "tests.support.migrations",
    "tests.support.pushes",
    "tests.support.serve_process",
    "tests.support.standin_client",
]

if TYPE_CHECKING:
    from local.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    from local.stack import start_stack

    # Tests always talk to the stand-in model: deterministic, free, offline.
    saved = {k: os.environ.pop(k) for k in ("ANTHROPIC_API_KEY",) if k in os.environ}
    s = start_stack(database_name=f"chat_test_{uuid.uuid4().hex[:8]}", quiet=True, force_standin=True)
    s.apply()
    os.environ.setdefault("DB_POOL_MAX", "4")
    from chatcore.config import get_settings

    get_settings.cache_clear()
    yield s
    from chatcore import db

    db.close_pool()
    s.stop()
    os.environ.update(saved)


@pytest.fixture()
def standin(stack: Stack):
    stack.standin.reset()
    return stack.standin


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server_url(stack: Stack) -> Iterator[str]:
    from local.server import BackgroundServer

    server = BackgroundServer(_free_port()).start()
    yield server.url
    server.stop()


@pytest.fixture()
def s3(stack: Stack):
    """A boto3 S3 client of the moto server (the test's own, not the app's)."""
    import boto3

    return boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")


@pytest.fixture()
def bucket(stack: Stack) -> str:
    return stack.env["MEDIA_BUCKET"]


@pytest.fixture()
def db_conn(stack: Stack):
    from psycopg.rows import dict_row

    from tests.support import pg

    with pg.connect(stack.env["DATABASE_URL"], autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture()
def user(server_url: str) -> User:
    return User(server_url)


@pytest.fixture()
def other_user(server_url: str) -> User:
    return User(server_url)


@pytest.fixture()
def settings_env(monkeypatch):
    """Edit the environment and re-read the settings; both are restored afterwards."""
    from chatcore.config import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def rebuild_models() -> None:
    """Forget what this process built from the settings once: the settings, the Claude models and the
    agents and teams holding them (built anew, from the environment, on next use)."""
    from chatcore.config import get_settings
    from chatcore.turns import claude as claude_models, compaction, registry

    get_settings.cache_clear()
    claude_models.claude.cache_clear()
    compaction._summariser.cache_clear()
    registry._conversations.clear()


@pytest.fixture()
def models_env(monkeypatch):
    """Set environment variables the models are built from (``models_env(NAME="value")``); the models
    are rebuilt now and again after the test, with the environment restored."""
    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        rebuild_models()

    yield apply
    monkeypatch.undo()
    rebuild_models()
