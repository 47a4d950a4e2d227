"""The Claude models agents run on: built once per process so their HTTP clients are reused.

Every request asks for prompt caching: the system prompt (with the tools before it, which the
cache prefix covers) carries a breakpoint, and the Messages API's top-level ``cache_control``
(automatic caching) puts one on the last block of the conversation, so the next model call of the
turn, and the next turn, read the whole history from the cache while it is unchanged. Both use
``PROMPT_CACHE_TTL`` (``5m``, or ``1h`` billed at its own rate: ``tracking.usage_of``).

A model call silent for ``MODEL_IDLE_TIMEOUT`` seconds (120) is ended and retried at most
``MODEL_MAX_RETRIES`` times (2): a model that never answers ends the turn, as failed with a terminal
event, within about (1 + 2) x 120 s = 6 minutes, well inside the function's 900 s.
"""

from __future__ import annotations

from functools import lru_cache

from agno.models.anthropic import Claude
from anthropic import Timeout  # the SDK's own (it runs on httpx2: an httpx.Timeout is refused)

from chatcore.config import anthropic_api_key, get_settings


class ModelNotConfigured(RuntimeError):
    """Neither an API key nor a stand-in endpoint is configured."""


@lru_cache(maxsize=None)
def claude(model_id: str) -> Claude:
    """A shared Claude model for ``model_id``, honouring ANTHROPIC_BASE_URL."""
    settings = get_settings()
    api_key = anthropic_api_key()  # ANTHROPIC_API_KEY, else the Secrets Manager secret (AWS)
    if not api_key:
        if not settings.anthropic_base_url:
            raise ModelNotConfigured(
                "set ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_SECRET_ARN (real Claude) "
                "or ANTHROPIC_BASE_URL (an Anthropic-compatible server)"
            )
        api_key = "no-key-needed-for-local-endpoint"
    client_params: dict = {
        # read: the longest silence between two chunks of the answer; connect: a model API that does
        # not answer at all. Each attempt is ended then, and the SDK retries (429, 5xx, timeouts).
        "timeout": Timeout(connect=10.0, read=float(settings.model_idle_timeout), write=30.0, pool=10.0),
        "max_retries": settings.model_max_retries,
    }
    if settings.anthropic_base_url:
        client_params["base_url"] = settings.anthropic_base_url
    one_hour = settings.prompt_cache_ttl == "1h"
    return Claude(id=model_id, api_key=api_key, client_params=client_params, max_tokens=4096,
                  cache_system_prompt=True, extended_cache_time=one_hour,
                  request_params={"cache_control": {"type": "ephemeral", **({"ttl": "1h"} if one_hour else {})}})
