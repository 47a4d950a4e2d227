"""The Claude models agents run on: built once per process so their HTTP clients are reused.

Every request asks for prompt caching: the system prompt (with the tools before it, which the
cache prefix covers) carries a breakpoint, and the Messages API's top-level ``cache_control``
(automatic caching) puts one on the last block of the conversation, so the next model call of the
turn, and the next turn, read the whole history from the cache while it is unchanged. Both use
``PROMPT_CACHE_TTL`` (``5m``, or ``1h`` billed at its own rate: ``tracking.usage_of``).
"""

from __future__ import annotations

from functools import lru_cache

from agno.models.anthropic import Claude

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
    client_params = {"base_url": settings.anthropic_base_url} if settings.anthropic_base_url else None
    one_hour = settings.prompt_cache_ttl == "1h"
    return Claude(id=model_id, api_key=api_key, client_params=client_params, max_tokens=4096,
                  cache_system_prompt=True, extended_cache_time=one_hour,
                  request_params={"cache_control": {"type": "ephemeral", **({"ttl": "1h"} if one_hour else {})}})
