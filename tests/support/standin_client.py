"""A stand-in model of the test module's own (not the stack's ``standin``) and the real anthropic SDK
pointed at it, for the tests of the stand-in itself: ``own_standin`` (started once per module, empty
at the start and the end of each test) and ``standin_sdk``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def _module_standin():
    from local.anthropic_standin import StandinServer

    with StandinServer() as srv:
        yield srv


@pytest.fixture()
def own_standin(_module_standin):
    """The module's stand-in as it started: no script, no recorded request, no cache entry, the default
    config."""
    _module_standin.reset()
    yield _module_standin
    _module_standin.reset()


@pytest.fixture(scope="module")
def _module_sdk(_module_standin):
    import anthropic

    return anthropic.Anthropic(api_key="test", base_url=_module_standin.url, max_retries=0)


@pytest.fixture()
def standin_sdk(own_standin, _module_sdk):
    """The real anthropic SDK (no retries) talking to ``own_standin``."""
    return _module_sdk
