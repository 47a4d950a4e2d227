"""Big photos straight to S3, without S3: the request bodies (an upload, a turn's images as base64 or
upload ids), the upload key rule and the template's rules that must agree with it, the size refused
up front, and the uploads' problems. The presigned POST and the turn run against moto in
tests/integration/test_uploads.py."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatcore.config import get_settings
from chatcore.errors import PayloadTooLarge, UploadExpired, UploadNotFound, UploadNotReceived, UploadUsed
from chatcore.media.keys import session_prefix, upload_key
from chatcore.media.uploads import check_size
from chatcore.wire.schemas import ImageIn, TurnIn, UploadIn, UploadRef

ROOT = Path(__file__).resolve().parents[2]
UPLOAD = uuid.UUID("0190b3f4-7c1e-7a2b-8c3d-4e5f60718293")
PHOTO_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif", "image/avif")
# the schemas' limits and the upload size are the settings' (the declared defaults here)
pytestmark = pytest.mark.usefixtures("dummy_settings")


# --------------------------------------------------------------------------- a turn's images


def test_a_turn_takes_base64_and_upload_ids_side_by_side():
    body = TurnIn.model_validate({"message": "two photos", "images": [
        {"data": "aGVsbG8=", "mime_type": "image/png"}, {"upload_id": str(UPLOAD)}]})
    assert isinstance(body.images[0], ImageIn) and body.images[0].data == "aGVsbG8="
    assert isinstance(body.images[1], UploadRef) and body.images[1].upload_id == UPLOAD


@pytest.mark.parametrize("item, where", [
    ({"upload_id": str(UPLOAD), "data": "aGVsbG8="}, "data"),        # both: refused, not one picked
    ({"upload_id": str(UPLOAD), "mime_type": "image/png"}, "mime_type"),
    ({"upload_id": "not-a-uuid"}, "upload_id"),
    ({"upload_id": 12}, "upload_id"),
    ({"upload_id": None}, "upload_id"),
    ({"upload_id": str(UPLOAD), "url": "https://example.com/x.png"}, "url"),
])
def test_an_upload_item_with_anything_else_or_a_bad_id_is_refused(item, where):
    with pytest.raises(ValidationError) as e:
        TurnIn.model_validate({"images": [item]})
    assert [err["loc"][-1] for err in e.value.errors()] == [where]


def test_a_base64_item_is_checked_as_before():
    with pytest.raises(ValidationError) as e:
        TurnIn.model_validate({"images": [{"mime_type": "image/png"}]})
    assert [err["loc"][-1] for err in e.value.errors()] == ["data"]
    with pytest.raises(ValidationError):
        TurnIn.model_validate({"images": [{"data": "aGVsbG8=", "mime_type": "application/pdf"}]})


def test_uploads_count_towards_the_images_per_turn():
    most = get_settings().max_images_per_turn
    TurnIn.model_validate({"images": [{"upload_id": str(uuid.uuid4())} for _ in range(most)]})
    with pytest.raises(ValidationError):
        TurnIn.model_validate({"images": [{"upload_id": str(uuid.uuid4())} for _ in range(most + 1)]})


# --------------------------------------------------------------------------- POST /uploads


@pytest.mark.parametrize("mime_type", PHOTO_TYPES)
def test_an_upload_is_one_of_the_photo_types_a_turn_accepts(mime_type):
    assert UploadIn(mime_type=mime_type, size=1).mime_type == mime_type
    assert ImageIn(data="x", mime_type=mime_type).mime_type == mime_type


@pytest.mark.parametrize("body", [
    {"mime_type": "application/msword", "size": 100},
    {"mime_type": "image/svg+xml", "size": 100},
    {"mime_type": "image/png", "size": 0},
    {"mime_type": "image/png", "size": -5},
    {"mime_type": "image/png"},
    {"size": 100},
    {"mime_type": "image/png", "size": 100, "key": "media/somewhere-else"},
])
def test_an_upload_request_that_is_not_a_photo_or_a_pdf_or_has_no_size_is_refused(body):
    with pytest.raises(ValidationError):
        UploadIn.model_validate(body)


def test_the_size_limit_is_checked_in_code_and_answered_413():
    limit = get_settings().upload_max_bytes
    assert limit == 25 * 1024 * 1024
    UploadIn(mime_type="image/png", size=limit + 1)  # the schema takes it: the route answers 413, not 422
    check_size(limit, limit)
    with pytest.raises(PayloadTooLarge) as e:
        check_size(limit + 1, limit)
    problem = e.value.to_problem()
    assert (problem["status"], problem["code"], problem["field"]) == (413, "payload-too-large", "size")


# --------------------------------------------------------------------------- keys and the template


def test_an_upload_waits_under_the_pending_prefix_and_never_in_a_session():
    key = upload_key("media/", UPLOAD)
    assert key == f"media/pending/uploads/{UPLOAD}"
    assert not key.startswith(session_prefix("media/", UPLOAD))


def test_the_template_expires_and_grants_exactly_what_the_key_rule_names():
    template = (ROOT / "template.yaml").read_text()
    key = upload_key("${MediaPrefix}", UPLOAD)
    # the lifecycle rule expires unused originals; the roles may write (API) and delete (chat) only there
    lifecycle = re.search(r"Prefix: !Sub (\S+)\n\s+ExpirationInDays", template).group(1)
    assert key.startswith(lifecycle)
    uploads = "${MediaBucket.Arn}/" + upload_key("${MediaPrefix}", "*")
    assert template.count(f"Resource: !Sub {uploads}") == 2
    assert re.search(r"Action: s3:PutObject\n\s+Resource: !Sub " + re.escape(uploads), template)
    assert re.search(r"Action: (s3:DeleteObject|\[[^\]\n]*s3:DeleteObject[^\]\n]*\])\n\s+Resource: !Sub " + re.escape(uploads),
                     template)
    assert 'Path: "/uploads", Method: post' in template


# --------------------------------------------------------------------------- problems


def test_the_uploads_problems():
    found = {cls: cls("detail").to_problem() for cls in (UploadNotFound, UploadExpired, UploadNotReceived)}
    assert [(p["status"], p["code"]) for p in found.values()] == [
        (404, "upload-not-found"), (410, "upload-expired"), (422, "upload-not-received")]
    used = UploadUsed("already used", run_id="0190b3f4-0000-7000-8000-000000000001", field="images[0].upload_id")
    assert used.run_id == "0190b3f4-0000-7000-8000-000000000001"
    assert used.to_problem() | {"detail": None} == {
        "type": "https://errors.agent-chat.dev/upload-used", "title": "The upload was already used by a turn",
        "status": 409, "code": "upload-used", "detail": None, "run_id": "0190b3f4-0000-7000-8000-000000000001",
        "field": "images[0].upload_id"}
