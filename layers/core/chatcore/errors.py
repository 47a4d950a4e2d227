"""Domain errors, each with the HTTP status and stable problem type it maps to."""

from __future__ import annotations


class ProblemError(Exception):
    """An error the client caused or must know about, rendered as application/problem+json."""

    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"
    # Seconds after which a retry may succeed (a dependency that is down): the Retry-After header.
    retry_after: int | None = None
    # Further response headers (a rate limit's RateLimit and RateLimit-Policy).
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_problem(self) -> dict:
        """The problem document; its members are those of ``chatcore.wire.schemas.Problem``."""
        retry = {"retry_after": self.retry_after} if self.retry_after is not None else {}
        return {
            "type": f"https://errors.agent-chat.dev/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            **retry,
            **{name: value for name, value in self.extra.items() if value is not None},  # absent when unset
        }


class InternalError(ProblemError):
    """A failure of ours nothing else describes (a bug): the request may or may not have been done."""

    status, code, title = 500, "internal-error", "Internal error"


class Unauthorized(ProblemError):
    status, code, title = 401, "unauthorized", "Missing or invalid identity"


class OriginNotAllowed(ProblemError):
    """A browser's preflight from an origin ``CORS_ALLOWED_ORIGINS`` does not name."""

    status, code, title = 403, "origin-not-allowed", "Origin not allowed"


class NotFound(ProblemError):
    status, code, title = 404, "not-found", "Not found"


class TurnInProgress(ProblemError):
    status, code, title = 409, "turn-in-progress", "A turn is already running in this session"


class InvalidInput(ProblemError):
    status, code, title = 422, "invalid-input", "Invalid input"


class InvalidImage(ProblemError):
    status, code, title = 422, "invalid-image", "Invalid image"


class InvalidDocument(ProblemError):
    """A PDF that cannot be sent to the model: ``reason`` is ``not-a-pdf``, ``corrupt``, ``encrypted`` or
    ``too-many-pages``."""

    status, code, title = 422, "invalid-document", "Invalid document"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "payload-too-large", "Request body too large"


class ContextTooLarge(ProblemError):
    """A new message that alone does not fit one model request (CONTEXT_MAX_TOKENS and the others)."""

    status, code, title = 413, "context-too-large", "The message does not fit one model request"


class ServiceMisconfigured(ProblemError):
    """Something only an operator can fix is missing (an exchange rate, a model key)."""

    status, code, title = 503, "service-misconfigured", "The service is not configured to do this"


class BudgetExceeded(ProblemError):
    status, code, title = 402, "budget-exceeded", "Monthly budget exceeded"


class RateLimited(ProblemError):
    """A limit of the user's plan (``chatcore.money.plans``) refuses the request now: ``limit`` names
    it, ``Retry-After`` says when it frees up; nothing was stored, no model was called."""

    status, code, title = 429, "rate-limited", "A limit of your plan is reached"
    retry_after = 60

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: object) -> None:
        super().__init__(detail, **extra)
        if retry_after is not None:
            self.retry_after = max(1, retry_after)


class NotInPlan(ProblemError):
    """The user's plan does not include this agent or team, its model, thinking or web search."""

    status, code, title = 403, "not-in-plan", "Not included in your plan"


class StorageUnavailable(ProblemError):
    """S3 failed: nothing was stored or deleted; the app may retry."""

    status, code, title = 503, "storage-unavailable", "Storage is unavailable; try again"
    retry_after = 5


class DatabaseUnavailable(ProblemError):
    """Postgres could not be reached (restarting, failing over): nothing was done; the app may retry."""

    status, code, title = 503, "database-unavailable", "The database is unavailable; try again"
    retry_after = 5


class IdentityUnavailable(ProblemError):
    """The user pool's signing keys could not be fetched to check a token: nothing was done; retry."""

    status, code, title = 503, "identity-unavailable", "Tokens cannot be checked right now; try again"
    retry_after = 5


class ClientTurnIdReused(ProblemError):
    """A ``client_turn_id`` sent again with a different message: not a retry of the same turn."""

    status, code, title = 409, "client-turn-id-reused", "This client_turn_id belongs to a different message"


class TurnFinished(ProblemError):
    """A stop asked of a turn that has already ended (completed, failed or cancelled)."""

    status, code, title = 409, "turn-finished", "The turn has already finished"


# ---- uploads (POST /uploads: big photos straight to S3)


class UploadNotFound(ProblemError):
    """An unknown upload id, or someone else's: the same answer, so another user's upload is never revealed."""

    status, code, title = 404, "upload-not-found", "No such upload"


class UploadExpired(ProblemError):
    """An upload older than UPLOAD_TTL_SECONDS: ask for a new one (POST /uploads) and send the photo again."""

    status, code, title = 410, "upload-expired", "The upload has expired"


class UploadNotReceived(ProblemError):
    """An upload whose file never reached S3 (the presigned POST was not sent, or failed)."""

    status, code, title = 422, "upload-not-received", "The upload's file was not received"


class UploadUsed(ProblemError):
    """An upload a turn has already used (``run_id``: that turn); a photo is uploaded once per turn."""

    status, code, title = 409, "upload-used", "The upload was already used by a turn"

    def __init__(self, detail: str, *, run_id: str | None, **extra: object) -> None:
        super().__init__(detail, run_id=run_id, **extra)
        self.run_id = run_id


class NoDeletion(ProblemError):
    status, code, title = 404, "no-deletion", "No account deletion under way"


class NoExport(ProblemError):
    status, code, title = 404, "no-export", "No export"


class MemoryExists(ProblemError):
    """An edit that would make a memory say what another one of the user's already says."""

    status, code, title = 409, "memory-exists", "Another memory already says this"


class TurnPaused(ProblemError):
    """A turn of the session is paused for the user's approval (``run_id``): decide on it first
    (POST .../approvals), or stop it (POST .../cancel)."""

    status, code, title = 409, "turn-paused", "A turn of this session waits for the user's approval"


class TurnNotPaused(ProblemError):
    """A decision on a turn that is not paused (any more): decided already (a retry, or another device
    at the same moment), stopped, or finished; ``run_status`` says which. Follow the run through its
    events route (the same run id, rising event ids) instead."""

    status, code, title = 409, "turn-not-paused", "The turn is not waiting for a decision"


class ApprovalExpired(ProblemError):
    """The pause is older than ``APPROVAL_TTL``: nothing ran, the run ended ``expired``; ask again."""

    status, code, title = 409, "approval-expired", "The approval request expired"
