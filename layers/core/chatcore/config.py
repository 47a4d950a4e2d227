"""Settings read once from the environment at cold start, so a misconfigured function fails at init.

Every setting is declared once, in ``Settings`` below: its type (the annotation), its default, its
bounds or allowed values, its environment variable and what it does. Everything else reads the
values ``get_settings()`` returns (the request schemas, the handlers, the media and turn code), so a
limit set in the environment is the limit enforced everywhere. A value that is not of its type, is
out of its bounds or is not one of its allowed values fails ``get_settings()`` with one message naming
the variable and what it accepts (``HEARTBEAT_SECONDS must be a number from 0.1 to 240, got 'abc'``).
An empty variable is an unset one. The "Settings" table of docs/operations.md is generated from these
declarations (``python -m local.settings_doc``).

A frozen dataclass and a small reader rather than pydantic-settings: every function imports this
module at cold start, and the events, rollup, account and migrate functions load no pydantic
otherwise. Measured on a 2-core machine, a model of these settings read from the environment costs
about 30 ms with this module (mostly ``dataclasses``), 0.45 s with pydantic and 0.7 s with
pydantic-settings (their imports).

Postgres is named by ``DATABASE_URL`` (local, tests), or in AWS by ``DB_SECRET_ARN`` (an RDS-shaped
JSON secret: host, port, username, password, dbname) or ``DB_IAM_AUTH=1`` with ``DB_HOST``,
``DB_USER``, ``DB_NAME`` (a fresh IAM token per connection); see ``chatcore.db``. The Anthropic key
comes from ``ANTHROPIC_API_KEY`` or, in AWS, from the secret ``ANTHROPIC_API_KEY_SECRET_ARN``.
"""

import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

# Secrets are fetched through Powertools Parameters and re-fetched after this many seconds.
SECRET_MAX_AGE_SECONDS = 300

KIB = 1024
MIB = 1024 * 1024
TRUE_WORDS = ("1", "true", "yes")


def setting(default: Any, env: str | tuple[str, ...], doc: str, *, ge: float | None = None,
            le: float | None = None, choices: tuple[str, ...] | None = None, when_set: bool = False) -> Any:
    """Declare a setting of ``Settings``: its default, its variable (or variables: the first one set
    wins), what it does (one line), its bounds (``ge``/``le``, both given for a number) or allowed
    values (``choices``). ``when_set``: a flag on when its variable is set to anything."""
    names = (env,) if isinstance(env, str) else env
    return field(default=default, metadata={"setting": {"env": names, "doc": doc, "ge": ge, "le": le,
                                                        "choices": choices, "when_set": when_set}})


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        "", "DATABASE_URL", "Postgres (local, tests); required unless `DB_SECRET_ARN` or `DB_IAM_AUTH` names it")
    media_bucket: str = setting("", "MEDIA_BUCKET", "the S3 bucket of photos, uploads and exports; required")
    media_prefix: str = setting("media/", "MEDIA_PREFIX", "the key prefix of everything stored in the bucket")
    aws_region: str | None = setting(None, ("AWS_REGION", "AWS_DEFAULT_REGION"), "the AWS region (set by Lambda)")
    s3_endpoint_url: str | None = setting(
        None, ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), "the S3 endpoint (moto locally); unset: AWS's")
    s3_timeout: int = setting(
        10, "S3_TIMEOUT", "seconds an S3 call waits for an answer (3 attempts at most, 3 s to connect): a stalled "
        "S3 fails in seconds", ge=1, le=300)
    inline_image_max_bytes: int = setting(
        32 * KIB, "INLINE_IMAGE_MAX_BYTES", "a photo up to this many bytes stays inline (base64) in its message "
        "row; larger ones go to S3 (0: every photo to S3)", ge=0, le=1 * MIB)
    max_image_bytes: int = setting(
        5 * MIB, "MAX_IMAGE_BYTES", "the largest base64 photo of a turn, decoded (larger: 413)", ge=1 * KIB, le=6 * MIB)
    image_max_edge: int = setting(
        1568, "IMAGE_MAX_EDGE", "a photo's long edge after normalisation, in pixels (Claude downscales larger "
        "ones anyway)", ge=64, le=8000)
    image_max_pixels: int = setting(
        1_150_000, "IMAGE_MAX_PIXELS", "a photo's area after normalisation, in pixels", ge=4096, le=64_000_000)
    image_max_decode_pixels: int = setting(
        50_000_000, "IMAGE_MAX_DECODE_PIXELS", "the most pixels one photo may decode (a JPEG counts at the "
        "reduced size it is decoded at; larger: 422 `invalid-image`, refused from its header before it is "
        "decoded)", ge=1_000_000, le=200_000_000)
    image_max_decode_pixels_per_turn: int = setting(
        64_000_000, "IMAGE_MAX_DECODE_PIXELS_PER_TURN", "the most pixels a turn's photos may decode together "
        "(counted as IMAGE_MAX_DECODE_PIXELS counts them; past it: 422 `invalid-image`, the photo refused "
        "from its header): bounds a turn's decoding CPU and memory", ge=1_000_000, le=2_000_000_000)
    image_max_bytes_per_turn: int = setting(
        80 * MIB, "IMAGE_MAX_BYTES_PER_TURN", "the most bytes a turn's photos (base64 and uploads) may hold "
        "together, as files (past it: 422 `invalid-image`, before the photo is decoded): a JPEG's decoding costs "
        "by its bytes", ge=1 * MIB, le=2048 * MIB)
    max_images_per_turn: int = setting(20, "MAX_IMAGES_PER_TURN", "photos a turn may send", ge=1, le=100)
    max_documents_per_turn: int = setting(5, "MAX_DOCUMENTS_PER_TURN", "PDF documents a turn may send", ge=1, le=20)
    document_max_pages: int = setting(
        100, "DOCUMENT_MAX_PAGES", "the most pages of a PDF a turn accepts (more: 422 `invalid-document`, reason "
        "`too-many-pages`; the Messages API takes 100 pages a request)", ge=1, le=100)
    document_max_bytes: int = setting(
        32 * MIB, "DOCUMENT_MAX_BYTES", "the largest PDF, base64 in a turn (decoded; within the 6 MB body) or sent "
        "straight to S3 (`POST /uploads`); larger: 413", ge=1 * KIB, le=32 * MIB)
    max_message_chars: int = setting(32_000, "MAX_MESSAGE_CHARS", "characters of a turn's message", ge=1,
                                     le=1_000_000)
    max_client_turn_id_chars: int = setting(
        128, "MAX_CLIENT_TURN_ID_CHARS", "characters of a turn's `client_turn_id` (at least a UUID's 36)", ge=36,
        le=1024)
    max_title_chars: int = setting(200, "MAX_TITLE_CHARS", "characters of a session's title", ge=1, le=1000)
    max_page_size: int = setting(
        200, "MAX_PAGE_SIZE", "the largest `limit` of a page of sessions or messages (at least the routes' "
        "default of 50)", ge=50, le=500)
    max_usage_days: int = setting(
        366, "MAX_USAGE_DAYS", "days one `GET /usage` may span (at least a month: the default range)", ge=31,
        le=3660)
    max_body_bytes: int = setting(
        6 * MIB, "MAX_BODY_BYTES", "the largest request body (larger: 413); Lambda refuses synchronous payloads "
        "over 6 MB, and the local server applies the same limit", ge=64 * KIB, le=6 * MIB)
    presigned_url_seconds: int = setting(
        900, "PRESIGNED_URL_SECONDS", "lifetime of the presigned URLs of photos and exports", ge=60, le=604_800)
    anthropic_api_key: str | None = setting(None, "ANTHROPIC_API_KEY", "the Anthropic API key")
    anthropic_base_url: str | None = setting(
        None, "ANTHROPIC_BASE_URL", "an Anthropic-compatible endpoint (the stand-in locally); unset: Anthropic's")
    allow_unsigned_jwt: bool = setting(
        False, "ALLOW_UNSIGNED_JWT", "dev only: read the claims of unsigned bearer JWTs; refused in Lambda")
    running_in_lambda: bool = setting(
        False, "AWS_LAMBDA_FUNCTION_NAME", "running inside Lambda (set by Lambda)", when_set=True)
    stale_turn_seconds: int = setting(
        16 * 60, "STALE_TURN_SECONDS", "a running turn older than this is taken for abandoned (its sandbox died); "
        "more than `TURN_TIMEOUT`", ge=60, le=86_400)
    approval_ttl: int = setting(
        86_400, "APPROVAL_TTL", "seconds a turn paused for the user's approval waits for the decision; an older "
        "pause ends `expired` (nothing runs; the decision is 409 `approval-expired`)", ge=60, le=2_592_000)
    history_max_turns: int = setting(
        100, "HISTORY_MAX_TURNS", "at most this many of the session's last completed turns are read for the "
        "model's input; fewer when the newer turns already hold twice `CONTEXT_MAX_TOKENS` (the context budgets "
        "decide which it sees)", ge=1, le=10_000)
    context_max_tokens: int = setting(
        80_000, "CONTEXT_MAX_TOKENS", "one model request's budget of estimated tokens", ge=1000, le=1_000_000)
    context_max_images: int = setting(
        20, "CONTEXT_MAX_IMAGES", "one model request's budget of images (the Messages API takes 100)", ge=1, le=100)
    context_max_document_pages: int = setting(
        100, "CONTEXT_MAX_DOCUMENT_PAGES", "one model request's budget of PDF pages (the Messages API takes 100); "
        "older documents become a placeholder in the model's copy", ge=1, le=100)
    context_max_bytes: int = setting(
        24 * MIB, "CONTEXT_MAX_BYTES", "one model request's budget of encoded bytes (the Messages API takes 32 MB)",
        ge=1 * MIB, le=32 * MIB)
    memory_max_tokens: int = setting(
        2000, "MEMORY_MAX_TOKENS", "estimated tokens of the user's memories recalled at the start of a session; "
        "past it they are consolidated (a priced model call), never dropped", ge=200, le=50_000)
    memory_max_count: int = setting(
        100, "MEMORY_MAX_COUNT", "memories a user keeps; past it they are consolidated", ge=5, le=10_000)
    memory_max_chars: int = setting(
        500, "MEMORY_MAX_CHARS", "characters of one memory (a longer one: 422 on the routes, refused to the "
        "model)", ge=50, le=4000)
    prompt_cache_ttl: str = setting(
        "5m", "PROMPT_CACHE_TTL", "the TTL of prompt cache entries (`1h` is billed higher)", choices=("5m", "1h"))
    model_idle_timeout: int = setting(
        120, "MODEL_IDLE_TIMEOUT", "a model call that sends nothing for this many seconds is ended (and retried)",
        ge=1, le=900)
    model_max_retries: int = setting(2, "MODEL_MAX_RETRIES", "retries of a failed or silent model call", ge=0, le=10)
    turn_timeout: int = setting(
        780, "TURN_TIMEOUT", "a turn's conversation running longer is ended and stored as failed (`turn-timeout`), "
        "so the client gets its terminal event before the function's 900 s", ge=1, le=900)
    heartbeat_seconds: float = setting(
        15.0, "HEARTBEAT_SECONDS", "a streamed turn silent this long sends an SSE comment (`: ping`), so iOS "
        "(60 s) and API Gateway (5 min idle) keep the connection", ge=0.1, le=240)
    event_batch_seconds: float = setting(
        0.25, "EVENT_BATCH_SECONDS", "a running turn writes its events (and reads a stop request) in one round "
        "trip this often", ge=0.01, le=3600)
    follow_max_poll_seconds: float = setting(
        1.0, "FOLLOW_MAX_POLL_SECONDS", "a resumed stream reads the turn's new events every EVENT_BATCH_SECONDS, "
        "and less often (up to this) while nothing new comes: one query per read, no connection held between",
        ge=0.01, le=60)
    cancel_grace_seconds: float = setting(
        1.0, "CANCEL_GRACE_SECONDS", "a stopped turn whose model or tool has not stopped this long after agno's "
        "cancellation is ended anyway", ge=0, le=60)
    event_retention_hours: int = setting(
        24, "EVENT_RETENTION_HOURS", "a finished turn's events are kept at least this long for replays, then "
        "pruned by the scheduled function, but its final event (its messages stay)", ge=1, le=8760)
    upload_max_bytes: int = setting(
        25 * MIB, "UPLOAD_MAX_BYTES", "the largest photo sent straight to S3 (`POST /uploads`; larger: 413)",
        ge=1 * KIB, le=100 * MIB)
    upload_url_seconds: int = setting(
        600, "UPLOAD_URL_SECONDS", "how long an upload's presigned POST accepts the file", ge=60, le=604_800)
    upload_ttl_seconds: int = setting(
        24 * 3600, "UPLOAD_TTL_SECONDS", "how long an upload can be sent with a turn (later: 410 `upload-expired`); "
        "keep it within the template's `PendingUploadExpiryDays`", ge=60, le=604_800)
    api_requests_per_minute: int = setting(
        300, "API_REQUESTS_PER_MINUTE", "requests a user may make to the API function's routes per minute, counted "
        "per instance in memory (more: 429 `rate-limited`); 0: no limit. Turns are limited by the user's plan",
        ge=0, le=1_000_000)
    max_model_calls_per_turn: int = setting(
        4, "MAX_MODEL_CALLS_PER_TURN", "the model calls a turn is assumed to make (tool rounds, a team's "
        "delegations), for its budget reservation", ge=1, le=100)
    account_wait_seconds: float = setting(
        8.0, "ACCOUNT_WAIT_SECONDS", "how long `DELETE /me` and `POST /me/export` work within the request before "
        "answering 202 (the API's limit is 29 s)", ge=0, le=25)
    account_function_name: str | None = setting(
        None, "ACCOUNT_FUNCTION_NAME", "the account function, which finishes what `DELETE /me` and `POST "
        "/me/export` hand over; unset (locally): a thread of the API process runs the job")
    export_ttl_seconds: int = setting(
        24 * 3600, "EXPORT_TTL_SECONDS", "how long a ready export can be downloaded before the scheduled "
        "function deletes it", ge=60, le=2_592_000)
    export_cooldown_seconds: int = setting(
        3600, "EXPORT_COOLDOWN_SECONDS", "POST /me/export answers a ready export made less than this many seconds "
        "ago as it is, instead of building another (0: every request builds a new one)", ge=0, le=2_592_000)
    retention_days: int = setting(
        0, "RETENTION_DAYS", "sessions inactive (no turn, no rename) for more than this many days are deleted by "
        "the scheduled function, photos included, their cost kept (0: kept until the user deletes them)",
        ge=0, le=36_500)
    db_secret_arn: str | None = setting(
        None, "DB_SECRET_ARN", "in AWS: the Secrets Manager secret of the database (host, port, username, "
        "password, dbname)")
    db_iam_auth: bool = setting(
        False, "DB_IAM_AUTH", "in AWS: connect with IAM auth tokens (needs `DB_HOST`, `DB_USER`, `DB_NAME`)")
    db_host: str | None = setting(None, "DB_HOST", "in AWS: the database host (an RDS Proxy endpoint)")
    db_port: int = setting(5432, "DB_PORT", "in AWS: the database port", ge=1, le=65_535)
    db_name: str | None = setting(None, "DB_NAME", "in AWS: the database name")
    db_user: str | None = setting(None, "DB_USER", "in AWS: the database user")
    db_sslmode: str | None = setting(
        None, "DB_SSLMODE", "in AWS: libpq's sslmode; unset: verify-full against the shipped CA bundle "
        "(`disable` only for a local Postgres without TLS)",
        choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"))
    db_sslrootcert: str | None = setting(
        None, "DB_SSLROOTCERT", "the CAs a verifying connection trusts; unset: the bundle the core layer ships "
        "(chatcore/certs/postgres-ca.pem: RDS and RDS Proxy)")
    db_pool_max: int = setting(
        1, "DB_POOL_MAX", "database connections per process (1 in Lambda; more for a local server)", ge=1, le=100)
    db_pool_timeout: float = setting(
        5.0, "DB_POOL_TIMEOUT", "seconds a request waits for a database connection before it is answered 503 "
        "`database-unavailable`", ge=0.1, le=60)
    db_pool_max_idle: float = setting(
        60.0, "DB_POOL_MAX_IDLE", "a pooled connection unused this many seconds is closed (the pool keeps none "
        "open for nothing)", ge=0.1, le=3600)
    resume_token_seconds: int = setting(
        300, "RESUME_TOKEN_SECONDS", "how long a resume token (a browser's EventSource resuming one turn's stream) "
        "opens the stream", ge=30, le=3600)
    cognito_issuer: str | None = setting(
        None, "COGNITO_ISSUER", "in AWS, the events function: the user pool's issuer "
        "(`https://cognito-idp.<region>.amazonaws.com/<pool id>`); its route has no API Gateway authorizer (a "
        "browser resumes with a resume token), so it checks a bearer token's signature, expiry and issuer itself")
    cors_allowed_origins: str = setting(
        "", "CORS_ALLOWED_ORIGINS", "the origins of browser apps that may call the API, comma-separated "
        "(`https://app.example,http://localhost:5173`; `*`: any); empty: none (mobile apps need none)")
    push_apns_application_arn: str | None = setting(
        None, "PUSH_APNS_APPLICATION_ARN", "the SNS platform application of the iOS app (APNs, production); unset: "
        "devices of that platform are stored and nothing is sent to them")
    push_apns_sandbox_application_arn: str | None = setting(
        None, "PUSH_APNS_SANDBOX_APPLICATION_ARN", "the SNS platform application of development builds (APNs "
        "sandbox); unset: nothing is sent to them")
    push_fcm_application_arn: str | None = setting(
        None, "PUSH_FCM_APPLICATION_ARN", "the SNS platform application of the Android app (FCM); unset: nothing "
        "is sent to them")
    sns_endpoint_url: str | None = setting(
        None, "AWS_ENDPOINT_URL_SNS", "the SNS endpoint (moto locally); unset: AWS's")
    spool_queue_url: str | None = setting(
        None, "SPOOL_QUEUE_URL", "the SQS FIFO queue a finished turn is spooled to when the database stays "
        "unreachable through its retries (written by the spool consumer once it is back); unset: kept in the "
        "process only")
    sqs_endpoint_url: str | None = setting(
        None, "AWS_ENDPOINT_URL_SQS", "the SQS endpoint (moto locally); unset: `AWS_ENDPOINT_URL` (boto3 reads it), else AWS's")
    push_timeout: float = setting(
        2.0, "PUSH_TIMEOUT", "seconds an SNS call (a push, an endpoint) waits to connect and for its answer; one "
        "attempt, never retried", ge=0.1, le=30)
    push_backoff_seconds: float = setting(
        30.0, "PUSH_BACKOFF_SECONDS", "after SNS could not be reached, this process sends no push for this long "
        "(each skipped one logged and counted): no storm of timeouts while it is down", ge=0, le=3600)
    push_delivery_grace_seconds: float = setting(
        2.0, "PUSH_DELIVERY_GRACE_SECONDS", "after a turn whose client left ends, how long the chat function waits "
        "for a resumed stream (the events route) to read the final event before it sends `turn_finished`; more "
        "than FOLLOW_MAX_POLL_SECONDS", ge=0, le=60)
    anthropic_api_key_secret_arn: str | None = setting(
        None, "ANTHROPIC_API_KEY_SECRET_ARN", "in AWS: the secret holding the Anthropic API key (when "
        "`ANTHROPIC_API_KEY` is not set)")


@dataclass(frozen=True)
class Declared:
    """One setting as ``Settings`` declares it."""

    name: str
    type: Any  # int, float, bool, str or str | None
    default: Any
    env: tuple[str, ...]
    doc: str
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    when_set: bool = False

    @property
    def numeric(self) -> bool:
        return self.type in (int, float)

    def accepts(self) -> str:
        """What the variable accepts, as the error message and the docs say it."""
        if self.when_set:
            return "any value (set: on)"
        if self.type is bool:
            return f"{', '.join(TRUE_WORDS)} (any case): on; anything else: off"
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.numeric:
            kind = "a whole number" if self.type is int else "a number"
            return f"{kind} from {_number(self.ge)} to {_number(self.le)}"
        return "any text"

    def parse(self, raw: str) -> Any:
        """The value of ``raw`` (the variable's text); ValueError naming the variable when it is refused."""
        if self.when_set:
            return True
        if self.type is bool:
            return raw.lower() in TRUE_WORDS
        if self.numeric:
            try:
                value = self.type(raw.strip())
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or not self.ge <= value <= self.le:
                raise ValueError(f"{self.env[0]} must be {self.accepts()}, got {raw!r}")
            return value
        if self.choices and raw not in self.choices:
            raise ValueError(f"{self.env[0]} must be {self.accepts()}, got {raw!r}")
        return raw


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


DECLARED: dict[str, Declared] = {
    f.name: Declared(name=f.name, type=f.type, default=f.default, **f.metadata["setting"]) for f in fields(Settings)}


def check(name: str, value: Any) -> Any:
    """``value`` of the setting ``name`` checked against its declaration (a value given in code, such
    as a command's argument); RuntimeError naming the variable and what it accepts."""
    try:
        return DECLARED[name].parse(str(value))
    except ValueError as e:
        raise RuntimeError(str(e)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached); ``get_settings.cache_clear()`` re-reads them.

    RuntimeError when a value is refused (one message naming every variable at fault and what each
    accepts) or the settings do not go together (no database, no bucket...)."""
    env = os.environ
    values: dict[str, Any] = {}
    refused: list[str] = []
    for declared in DECLARED.values():
        raw = next((env[name] for name in declared.env if env.get(name)), None)
        if raw is None:
            continue  # unset or empty: the default
        try:
            values[declared.name] = declared.parse(raw)
        except ValueError as e:
            refused.append(str(e))
    if refused:
        raise RuntimeError("; ".join(refused))
    settings = Settings(**values)
    _check_together(settings)
    return settings


def _check_together(s: Settings) -> None:
    """The rules between settings: where the database is, the bucket, no unsigned JWTs in Lambda."""
    if not (s.database_url or s.db_secret_arn or s.db_iam_auth):
        raise RuntimeError("DATABASE_URL is not set (in AWS: DB_SECRET_ARN, or DB_IAM_AUTH=1 with DB_HOST)")
    if s.db_iam_auth and not s.database_url:
        missing = [n for n, v in (("DB_HOST", s.db_host), ("DB_USER", s.db_user), ("DB_NAME", s.db_name)) if not v]
        if missing:
            raise RuntimeError(f"DB_IAM_AUTH=1 needs {', '.join(missing)}")
    if not s.media_bucket:
        raise RuntimeError("MEDIA_BUCKET is not set")
    if s.running_in_lambda and s.allow_unsigned_jwt:
        raise RuntimeError("ALLOW_UNSIGNED_JWT is for local development and is refused in Lambda")
    for origin in (o.strip() for o in s.cors_allowed_origins.split(",") if o.strip()):
        if origin != "*" and not re.fullmatch(r"https?://[^/\s?#*]+/?", origin):
            raise RuntimeError(f"CORS_ALLOWED_ORIGINS must be origins (scheme://host[:port]) or *, comma-separated, "
                               f"got {origin!r}")
    if s.stale_turn_seconds <= s.turn_timeout:
        raise RuntimeError(f"STALE_TURN_SECONDS ({s.stale_turn_seconds}) must be more than TURN_TIMEOUT "
                           f"({s.turn_timeout}): a turn still running would be taken for abandoned")


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
