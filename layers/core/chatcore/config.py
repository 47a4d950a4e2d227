"""Settings read once from the environment at cold start, so a misconfigured function fails at init.

Postgres is named by ``DATABASE_URL`` (local, tests), or in AWS by ``DB_SECRET_ARN`` (an RDS-shaped
JSON secret: host, port, username, password, dbname) or ``DB_IAM_AUTH=1`` with ``DB_HOST``,
``DB_USER``, ``DB_NAME`` (a fresh IAM token per connection); see ``chatcore.db``. The Anthropic key
comes from ``ANTHROPIC_API_KEY`` or, in AWS, from the secret ``ANTHROPIC_API_KEY_SECRET_ARN``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Secrets are fetched through Powertools Parameters and re-fetched after this many seconds.
SECRET_MAX_AGE_SECONDS = 300


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from e


def _at_least_0(name: str, default: int) -> int:
    value = _int(name, default)
    if value < 0:
        raise RuntimeError(f"{name} must be 0 or more, got {value}")
    return value


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name) or default
    if raw not in allowed:
        raise RuntimeError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    database_url: str
    media_bucket: str
    media_prefix: str = "media/"
    aws_region: str | None = None
    s3_endpoint_url: str | None = None
    # Seconds an S3 call may wait for an answer (3 attempts at most): a stalled S3 fails in seconds.
    s3_timeout: int = 10
    # Images up to this many decoded bytes stay inline (base64) in the message row.
    inline_image_max_bytes: int = 32 * 1024
    # Input limits. The request schemas (chatcore.web.schemas) read these defaults from here.
    max_image_bytes: int = 5 * 1024 * 1024
    # Photos are normalised on arrival (chatcore.media.photos): long edge and area after downscaling,
    # and the largest image decoded at all (a decompression bomb is refused before it is decoded).
    image_max_edge: int = 1568
    image_max_pixels: int = 1_150_000
    image_max_decode_pixels: int = 64_000_000
    max_images_per_turn: int = 20
    max_message_chars: int = 32_000
    max_client_turn_id_chars: int = 128
    max_title_chars: int = 200
    max_page_size: int = 200
    # Lambda refuses synchronous request payloads over 6 MB (API Gateway's own limit is 10 MB); the
    # local server applies the same limit so what works locally works deployed.
    max_body_bytes: int = 6 * 1024 * 1024
    presigned_url_seconds: int = 900
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    # Dev only: accept unsigned bearer JWTs. Refused when running inside Lambda.
    allow_unsigned_jwt: bool = False
    running_in_lambda: bool = False
    # A 'running' turn older than this is treated as abandoned (its sandbox died).
    stale_turn_seconds: int = 16 * 60
    # At most this many of the session's last completed turns are read for the model's input (all
    # are stored); which of them the model sees is decided by the context budgets below.
    history_max_turns: int = 100
    # One model request's budgets (chatcore.turns.context): estimated tokens, images, encoded bytes.
    context_max_tokens: int = 80_000
    context_max_images: int = 20
    context_max_bytes: int = 24 * 1024 * 1024
    # Prompt caching on every model request (system prompt and tools, and the conversation through
    # the Messages API's automatic caching): the cache entries' TTL, "5m" or "1h" (billed higher).
    prompt_cache_ttl: str = "5m"
    # A model call that sends nothing for this many seconds is ended (and retried, at most
    # MODEL_MAX_RETRIES times), so a silent model cannot hold a turn past the function's 900 s.
    model_idle_timeout: int = 120
    model_max_retries: int = 2
    # A turn's conversation (every model and tool call) is ended after this many seconds and stored
    # as failed, so the client gets its terminal event before the function's 900 s limit cuts it.
    turn_timeout: int = 780
    # A streamed turn sends an SSE comment when it has sent nothing else for this many seconds.
    heartbeat_seconds: float = 15.0
    # A running turn's events are written to turn_events in batches, one round trip about every this
    # many seconds, so another instance can resume its stream (GET .../events, Last-Event-ID); the
    # same round trip reads whether the turn was asked to stop (POST .../cancel).
    event_batch_seconds: float = 0.25
    # A turn asked to stop ends its model call through agno's run cancellation; one that has not
    # stopped this many seconds later (a silent model or tool) is ended anyway.
    cancel_grace_seconds: float = 1.0
    # A finished turn's events are kept at least this long for replays; the scheduled function
    # prunes older ones (its messages stay).
    event_retention_hours: int = 24
    # Big photos go straight to S3 (POST /uploads, a presigned POST): the largest upload, how long
    # the presigned POST is valid, and how long an unused upload can still be sent with a turn.
    upload_max_bytes: int = 25 * 1024 * 1024
    upload_url_seconds: int = 600
    upload_ttl_seconds: int = 24 * 3600
    # The most model calls one turn is assumed to make (tool rounds, a team's delegations): what a
    # turn reserves against a budget is this many calls of its input and max_tokens of output.
    max_model_calls_per_turn: int = 4
    # Users' data (chatcore.account): how long DELETE /me and POST /me/export work within the request
    # before answering 202 (the account function finishes the job); the account function's name
    # (on AWS; unset, jobs run in a thread of this process); how long a ready export stays; and the
    # retention period of inactive sessions (0: kept forever), applied by the scheduled function.
    account_wait_seconds: float = 8.0
    account_function_name: str | None = None
    export_ttl_seconds: int = 24 * 3600
    retention_days: int = 0
    # Postgres in AWS (when DATABASE_URL is not set): a Secrets Manager secret or IAM auth.
    db_secret_arn: str | None = None
    db_iam_auth: bool = False
    db_host: str | None = None
    db_port: int = 5432
    db_name: str | None = None
    db_user: str | None = None
    db_sslmode: str | None = None
    # The CAs a verify-full (the default in AWS) connection trusts: the bundle the core layer ships
    # (chatcore/certs/postgres-ca.pem: RDS and RDS Proxy) when unset.
    db_sslrootcert: str | None = None
    # A pooled connection unused this many seconds is closed (the pool keeps none open for nothing).
    db_pool_max_idle: float = 60.0
    anthropic_api_key_secret_arn: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached); ``get_settings.cache_clear()`` re-reads them."""
    env = os.environ
    database_url = env.get("DATABASE_URL", "")
    db_secret_arn = env.get("DB_SECRET_ARN") or None
    db_iam_auth = env.get("DB_IAM_AUTH", "").lower() in ("1", "true", "yes")
    if not (database_url or db_secret_arn or db_iam_auth):
        raise RuntimeError("DATABASE_URL is not set (in AWS: DB_SECRET_ARN, or DB_IAM_AUTH=1 with DB_HOST)")
    if db_iam_auth and not database_url:
        missing = [n for n in ("DB_HOST", "DB_USER", "DB_NAME") if not env.get(n)]
        if missing:
            raise RuntimeError(f"DB_IAM_AUTH=1 needs {', '.join(missing)}")
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
        media_prefix=env.get("MEDIA_PREFIX", Settings.media_prefix),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        s3_timeout=_int("S3_TIMEOUT", Settings.s3_timeout),
        inline_image_max_bytes=_int("INLINE_IMAGE_MAX_BYTES", Settings.inline_image_max_bytes),
        max_image_bytes=_int("MAX_IMAGE_BYTES", Settings.max_image_bytes),
        image_max_edge=_int("IMAGE_MAX_EDGE", Settings.image_max_edge),
        image_max_pixels=_int("IMAGE_MAX_PIXELS", Settings.image_max_pixels),
        image_max_decode_pixels=_int("IMAGE_MAX_DECODE_PIXELS", Settings.image_max_decode_pixels),
        max_images_per_turn=_int("MAX_IMAGES_PER_TURN", Settings.max_images_per_turn),
        max_message_chars=_int("MAX_MESSAGE_CHARS", Settings.max_message_chars),
        presigned_url_seconds=_int("PRESIGNED_URL_SECONDS", Settings.presigned_url_seconds),
        anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
        anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
        allow_unsigned_jwt=allow_unsigned,
        running_in_lambda=in_lambda,
        stale_turn_seconds=_int("STALE_TURN_SECONDS", Settings.stale_turn_seconds),
        history_max_turns=_int("HISTORY_MAX_TURNS", Settings.history_max_turns),
        context_max_tokens=_int("CONTEXT_MAX_TOKENS", Settings.context_max_tokens),
        context_max_images=_int("CONTEXT_MAX_IMAGES", Settings.context_max_images),
        context_max_bytes=_int("CONTEXT_MAX_BYTES", Settings.context_max_bytes),
        prompt_cache_ttl=_choice("PROMPT_CACHE_TTL", ("5m", "1h"), Settings.prompt_cache_ttl),
        model_idle_timeout=_int("MODEL_IDLE_TIMEOUT", Settings.model_idle_timeout),
        model_max_retries=_int("MODEL_MAX_RETRIES", Settings.model_max_retries),
        turn_timeout=_int("TURN_TIMEOUT", Settings.turn_timeout),
        heartbeat_seconds=float(env.get("HEARTBEAT_SECONDS") or Settings.heartbeat_seconds),
        event_batch_seconds=float(env.get("EVENT_BATCH_SECONDS") or Settings.event_batch_seconds),
        cancel_grace_seconds=float(env.get("CANCEL_GRACE_SECONDS") or Settings.cancel_grace_seconds),
        event_retention_hours=_int("EVENT_RETENTION_HOURS", Settings.event_retention_hours),
        upload_max_bytes=_int("UPLOAD_MAX_BYTES", Settings.upload_max_bytes),
        upload_url_seconds=_int("UPLOAD_URL_SECONDS", Settings.upload_url_seconds),
        upload_ttl_seconds=_int("UPLOAD_TTL_SECONDS", Settings.upload_ttl_seconds),
        max_model_calls_per_turn=_int("MAX_MODEL_CALLS_PER_TURN", Settings.max_model_calls_per_turn),
        account_wait_seconds=float(env.get("ACCOUNT_WAIT_SECONDS") or Settings.account_wait_seconds),
        account_function_name=env.get("ACCOUNT_FUNCTION_NAME") or None,
        export_ttl_seconds=_int("EXPORT_TTL_SECONDS", Settings.export_ttl_seconds),
        retention_days=_at_least_0("RETENTION_DAYS", Settings.retention_days),
        db_secret_arn=db_secret_arn,
        db_iam_auth=db_iam_auth,
        db_host=env.get("DB_HOST") or None,
        db_port=_int("DB_PORT", Settings.db_port),
        db_name=env.get("DB_NAME") or None,
        db_user=env.get("DB_USER") or None,
        db_sslmode=env.get("DB_SSLMODE") or None,
        db_sslrootcert=env.get("DB_SSLROOTCERT") or None,
        db_pool_max_idle=float(env.get("DB_POOL_MAX_IDLE") or Settings.db_pool_max_idle),
        anthropic_api_key_secret_arn=env.get("ANTHROPIC_API_KEY_SECRET_ARN") or None,
    )


def get_secret(arn: str, *, as_json: bool = False) -> Any:
    """A Secrets Manager secret via Powertools Parameters, cached for SECRET_MAX_AGE_SECONDS."""
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(arn, transform="json" if as_json else None, max_age=SECRET_MAX_AGE_SECONDS)


def anthropic_api_key() -> str | None:
    """The Anthropic API key: ANTHROPIC_API_KEY, else the secret ANTHROPIC_API_KEY_SECRET_ARN.

    The secret may hold the bare key or a JSON object with an ``ANTHROPIC_API_KEY`` or ``api_key`` field.
    """
    settings = get_settings()
    if settings.anthropic_api_key:
        return settings.anthropic_api_key
    if not settings.anthropic_api_key_secret_arn:
        return None
    value = str(get_secret(settings.anthropic_api_key_secret_arn)).strip()
    if value.startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            value = str(doc.get("ANTHROPIC_API_KEY") or doc.get("api_key") or "").strip()
    return value or None
