"""A stand-in of its own for a test module, reset around each test, and the real SDK pointed at it
(``from tests.integration.standin_client import server, client, _clean``)."""

from __future__ import annotations

import anthropic
import pytest

from local.anthropic_standin import StandinServer


@pytest.fixture(scope="module")
def server():
    with StandinServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server):
    server.reset()
    yield
    server.reset()


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=0)
