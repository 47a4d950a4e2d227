"""Settings read once from the environment at cold start, so a misconfigured function fails at init."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from e


@dataclass(frozen=True)
class Settings:
    database_url: str
    media_bucket: str
    media_prefix: str = "media/"
    aws_region: str | None = None
    s3_endpoint_url: str | None = None
    # Images up to this many decoded bytes stay inline (base64) in the message row.
    inline_image_max_bytes: int = 32 * 1024
    max_image_bytes: int = 5 * 1024 * 1024
    max_images_per_turn: int = 20
    max_message_chars: int = 32_000
    presigned_url_seconds: int = 900
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    # Dev only: accept unsigned bearer JWTs. Refused when running inside Lambda.
    allow_unsigned_jwt: bool = False
    running_in_lambda: bool = False
    # A 'running' turn older than this is treated as abandoned (its sandbox died).
    stale_turn_seconds: int = 16 * 60
    extra: dict = field(default_factory=dict)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached); ``get_settings.cache_clear()`` re-reads them."""
    env = os.environ
    database_url = env.get("DATABASE_URL", "")
    if not database_url:
        raise RuntimeError("DATABASE_URL is not set")
    bucket = env.get("MEDIA_BUCKET", "")
    if not bucket:
        raise RuntimeError("MEDIA_BUCKET is not set")
    in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
    allow_unsigned = env.get("ALLOW_UNSIGNED_JWT", "").lower() in ("1", "true", "yes")
    if in_lambda and allow_unsigned:
        raise RuntimeError("ALLOW_UNSIGNED_JWT is for local development and is refused in Lambda")
    return Settings(
        database_url=database_url,
        media_bucket=bucket,
        media_prefix=env.get("MEDIA_PREFIX", "media/"),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        inline_image_max_bytes=_int("INLINE_IMAGE_MAX_BYTES", 32 * 1024),
        max_image_bytes=_int("MAX_IMAGE_BYTES", 5 * 1024 * 1024),
        max_images_per_turn=_int("MAX_IMAGES_PER_TURN", 20),
        max_message_chars=_int("MAX_MESSAGE_CHARS", 32_000),
        presigned_url_seconds=_int("PRESIGNED_URL_SECONDS", 900),
        anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
        anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
        allow_unsigned_jwt=allow_unsigned,
        running_in_lambda=in_lambda,
        stale_turn_seconds=_int("STALE_TURN_SECONDS", 16 * 60),
    )
