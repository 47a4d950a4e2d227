"""Big photos straight to S3 (POST /uploads), end to end: the presigned POST sent with httpx to the
moto S3 server, then a turn that names the upload. The photo is normalised like any other (upright,
no metadata, downscaled), the turn stores the normalised copy and the original is deleted.

Refused before anything is stored and before any model call: someone else's upload and an unknown
one (the same 404), an expired one (410), one whose file never came (422), a non-image (422), one
too big (413 up front; 413 at the turn for an object over the limit, which real S3 would not have
accepted but moto does), one a turn already used (409 with that run).

moto accepts any presigned POST (it checks neither the signature, the expiry, the size range nor the
Content-Type condition), so the policy the phone is given is checked by reading it here.
"""

from __future__ import annotations

import base64
import io
import json
import uuid

import httpx
import pytest
from PIL import Image

from tests.support.images import SMALL_PNG, assert_clean, b64, exif_with_gps, noise_png, normalised
from tests.support.turns import image_blocks
from tests.support.uploads import exists, new_upload, send_file, upload_row, uploaded

PROBLEM = "application/problem+json"
MAX_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    """A 1900x1800 PNG of noise, ~10.3 MB: incompressible, and over what a base64 turn body can carry."""
    return noise_png(1900, 1800, seed=13)


def refused(user, standin, db_conn, images: list[dict], status: int, code: str) -> dict:
    """A turn with ``images`` is refused with ``status``/``code``: no model call, no run, nothing stored."""
    sid = user.new_session()
    standin.reset()
    r, _ = user.turn(sid, message="look", images=images)
    assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM), (r.status_code, r.text)
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status, problem
    assert standin.requests() == []
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0
    return problem


# --------------------------------------------------------------------------- the flow


def test_a_10_mb_photo_sent_straight_to_s3_completes_a_turn_and_its_original_is_deleted(
        user, standin, db_conn, s3, bucket, big_photo):
    assert 10_000_000 < len(big_photo) < MAX_BYTES
    assert len(b64(big_photo)) > 6 * 1024 * 1024  # as base64 it would not fit Lambda's request body
    upload = new_upload(user, "image/png", len(big_photo))
    assert set(upload) == {"upload_id", "url", "fields", "expires_in"} and upload["expires_in"] == 600
    key = upload["fields"]["key"]
    assert key == f"media/pending/uploads/{upload['upload_id']}"
    # the policy the phone is given: this key, this type, 1 byte to the limit, signed, expiring
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, MAX_BYTES] in conditions
    assert {"Content-Type": "image/png"} in conditions and {"key": key} in conditions
    assert {"bucket": bucket} in conditions and policy["expiration"]
    assert upload["fields"]["x-amz-signature"] and upload["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    row = upload_row(db_conn, upload["upload_id"])
    assert (row["key"], row["mime_type"], row["size"], row["consumed_at"]) == (key, "image/png", len(big_photo), None)

    send_file(upload, big_photo)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(big_photo)
    sid = user.new_session()
    standin.reset()
    r, events = user.turn(sid, message="What is in this big photo?", images=[{"upload_id": upload["upload_id"]}])
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", (r.text[:500], events[-1:])
    run_id = events[-1]["data"]["run_id"]

    # the model saw the normalised photo; the turn's user message holds it, in the session's S3 objects
    stored = normalised(big_photo)
    [block] = image_blocks(standin.requests()[0]["body"])
    assert base64.b64decode(block["source"]["data"]) == stored
    user_row = db_conn.execute("SELECT message_parts FROM chat_events WHERE run_id = %s AND role = 'user'",
                               (run_id,)).fetchone()
    [image] = user_row["message_parts"]["images"]
    stored_key = image["media_reference"]["storage_key"]
    assert stored_key.startswith(f"media/{sid}-")
    assert s3.get_object(Bucket=bucket, Key=stored_key)["Body"].read() == stored
    [message] = [m for m in user.client.get(f"/sessions/{sid}/messages").json()["items"] if m["role"] == "user"]
    assert len(message["images"]) == 1 and httpx.get(message["images"][0]["url"]).content == stored

    # the original is gone, and the upload is used: sending it again is 409 with the run that used it
    assert not exists(s3, bucket, key)
    row = upload_row(db_conn, upload["upload_id"])
    assert row["consumed_at"] is not None
    problem = refused(user, standin, db_conn, [{"upload_id": upload["upload_id"]}], 409, "upload-used")
    assert problem["run_id"] == run_id and problem["field"] == "images[0].upload_id"
    assert upload_row(db_conn, upload["upload_id"])["consumed_run_id"] == uuid.UUID(run_id)


def test_a_heic_upload_beside_a_base64_photo_is_stored_without_gps_or_exif(user, standin, s3, bucket):
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (2016, 1512), (30, 120, 200)).save(out, "HEIF", exif=exif_with_gps())
    heic = out.getvalue()
    assert heic[4:12] == b"ftypheic" and b"iPhone" in heic
    upload = uploaded(user, heic, "image/heic")
    sid = user.new_session()
    standin.reset()
    _, events = user.turn(sid, message="Two photos",
                          images=[{"data": b64(SMALL_PNG)}, {"upload_id": upload["upload_id"]}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    blocks = image_blocks(standin.requests()[0]["body"])
    assert len(blocks) == 2
    sent = assert_clean(base64.b64decode(blocks[1]["source"]["data"]))
    assert sent.format in ("JPEG", "PNG", "WEBP") and sent.size == (928, 1238)  # upright (EXIF: 90 degrees), downscaled
    [message] = [m for m in user.client.get(f"/sessions/{sid}/messages").json()["items"] if m["role"] == "user"]
    assert len(message["images"]) == 2
    assert_clean(httpx.get(message["images"][1]["url"]).content)
    assert not exists(s3, bucket, upload["fields"]["key"])


# --------------------------------------------------------------------------- refused up front


def test_an_upload_over_the_limit_or_not_a_photo_type_is_refused_before_anything_is_recorded(user, db_conn):
    before = db_conn.execute("SELECT count(*) AS n FROM uploads").fetchone()["n"]
    r = user.client.post("/uploads", json={"mime_type": "image/jpeg", "size": MAX_BYTES + 1})
    assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "payload-too-large" and r.json()["field"] == "size"
    for body in ({"mime_type": "application/msword", "size": 1000}, {"mime_type": "image/png", "size": 0},
                 {"mime_type": "image/png", "size": 10, "key": "media/elsewhere"}):
        r = user.client.post("/uploads", json=body)
        assert r.status_code == 422 and r.json()["code"] == "invalid-input", (body, r.text)
    assert user.client.post("/uploads", json={"mime_type": "image/png", "size": MAX_BYTES}).status_code == 201
    assert db_conn.execute("SELECT count(*) AS n FROM uploads").fetchone()["n"] == before + 1
    r = httpx.post(f"{user.client.base_url}/uploads", json={"mime_type": "image/png", "size": 10})
    assert r.status_code == 401


# --------------------------------------------------------------------------- refused at the turn


def test_someone_elses_upload_is_the_same_404_as_an_unknown_one_and_is_left_alone(
        user, other_user, standin, db_conn, s3, bucket):
    upload = uploaded(user, SMALL_PNG)
    theirs = refused(other_user, standin, db_conn, [{"upload_id": upload["upload_id"]}], 404, "upload-not-found")
    unknown = refused(other_user, standin, db_conn, [{"upload_id": str(uuid.uuid4())}], 404, "upload-not-found")
    assert theirs == unknown  # nothing tells another user's upload from one that does not exist
    assert theirs["field"] == "images[0].upload_id"
    # the owner's upload is untouched, and still works for its owner
    assert exists(s3, bucket, upload["fields"]["key"])
    assert upload_row(db_conn, upload["upload_id"])["consumed_at"] is None
    _, events = user.turn(user.new_session(), message="mine", images=[{"upload_id": upload["upload_id"]}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]


def test_an_expired_upload_is_410(user, standin, db_conn):
    upload = uploaded(user, SMALL_PNG)
    db_conn.execute("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = %s", (upload["upload_id"],))
    refused(user, standin, db_conn, [{"upload_id": upload["upload_id"]}], 410, "upload-expired")


def test_an_upload_whose_file_never_came_is_422_upload_not_received(user, standin, db_conn):
    upload = new_upload(user)
    refused(user, standin, db_conn, [{"data": b64(SMALL_PNG)}, {"upload_id": upload["upload_id"]}], 422,
            "upload-not-received")


def test_an_upload_that_is_not_an_image_is_422_invalid_image(user, standin, db_conn, s3, bucket):
    upload = new_upload(user, "image/jpeg", 40)
    send_file(upload, b"%PDF-1.7 this is not a photo at all\n")  # sent with the type it promised
    problem = refused(user, standin, db_conn, [{"upload_id": upload["upload_id"]}], 422, "invalid-image")
    assert problem["field"] == "images[0].upload_id"
    truncated = uploaded(user, SMALL_PNG[:60])  # a PNG's magic bytes, then nothing
    refused(user, standin, db_conn, [{"upload_id": truncated["upload_id"]}], 422, "invalid-image")
    assert exists(s3, bucket, upload["fields"]["key"])  # a refused turn deletes nothing; the lifecycle will


def test_an_object_over_the_limit_is_413_at_the_turn(user, standin, db_conn, settings_env):
    from chatcore.config import get_settings

    photo = noise_png(200, 200, seed=5)  # ~120 KB
    settings_env.setenv("UPLOAD_MAX_BYTES", str(len(photo) - 1))
    get_settings.cache_clear()
    upload = new_upload(user, "image/png", 1000)  # a size that lies
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 1, len(photo) - 1] in policy["conditions"]
    send_file(upload, photo)  # real S3 refuses a file over the POST's range; moto stores it
    problem = refused(user, standin, db_conn, [{"upload_id": upload["upload_id"]}], 413, "payload-too-large")
    assert problem["field"] == "images[0].upload_id"


def test_a_missing_upload_is_told_from_a_denied_one_by_a_list_of_its_exact_key(stack):
    """In AWS the functions may list only under the media prefix, so S3 answers the GET of a missing
    upload with 403: ``s3.exists`` (a list of exactly that key) tells the two apart."""
    from chatcore.media import s3

    key = f"media/pending/uploads/exists-{uuid.uuid4()}"
    s3.put_image(key + "-longer", b"x", "image/png")
    assert not s3.exists(key)  # another object's key starting with it is not it
    s3.put_image(key, b"x", "image/png")
    assert s3.exists(key)


def test_an_image_with_both_kinds_names_its_own_field_in_the_422(user, standin):
    """{"data": null, "upload_id": ...}: the error is at images.0.data, as the client wrote the body
    (the validation's tag for the kind of image, "upload", is not a field)."""
    sid = user.new_session()
    r, _ = user.turn(sid, message="look", images=[{"data": None, "upload_id": "0190b3f4-7c1e-7a2b-8c3d-4e5f60718293"}])
    assert r.status_code == 422 and r.json()["code"] == "invalid-input"
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "images", "0", "data"]]
    r, _ = user.turn(sid, message="look", images=[{"data": 5}])
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "images", "0", "data"]]
