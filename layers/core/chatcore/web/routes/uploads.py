"""POST /uploads: a presigned S3 POST for a photo or PDF too big for a turn's body (``chatcore.media.uploads``)."""

from __future__ import annotations

from fastapi import APIRouter

from chatcore.media.uploads import presign
from chatcore.web.dependencies import Caller
from chatcore.web.fastapi_app import PROBLEM_RESPONSES
from chatcore.web.openapi import documented_problem
from chatcore.wire.schemas import UploadIn, UploadOut

router = APIRouter(tags=["uploads"])


@router.post("/uploads", status_code=201, response_model=UploadOut, responses={
    **PROBLEM_RESPONSES, 413: documented_problem(
        "size over UPLOAD_MAX_BYTES for a photo or DOCUMENT_MAX_BYTES for a PDF (payload-too-large)"),
    422: documented_problem("invalid fields, or a mime_type that is neither a photo type nor application/pdf "
                            "(invalid-input)"),
    503: documented_problem("storage unavailable (storage-unavailable); nothing was recorded", retry_after=True)})
def create_upload(body: UploadIn, sub: Caller) -> UploadOut:
    """Send a big photo or PDF straight to S3: POST the file to ``url`` (multipart/form-data: every one of
    ``fields``, then the file as ``file``) within ``expires_in`` seconds, then send ``{"upload_id"}`` in
    a turn's ``images`` (a photo) or ``documents`` (a PDF). Each upload is used by one turn, by its owner,
    within UPLOAD_TTL_SECONDS."""
    return UploadOut(**presign(sub, body.mime_type, body.size))
