"""The Claude models agents run on: built once per process so their HTTP clients are reused."""

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
    return Claude(id=model_id, api_key=api_key, client_params=client_params, max_tokens=4096)
