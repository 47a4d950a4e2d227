"""Photos sent straight to S3 as the phone sends them (POST /uploads, then the presigned POST to the
S3 server itself), and what S3 and the uploads table hold afterwards."""

from __future__ import annotations

import httpx
from botocore.exceptions import ClientError


def new_upload(user, mime_type: str = "image/png", size: int = 1000) -> dict:
    """POST /uploads: the upload's id and where the phone sends the file (``url``, ``fields``)."""
    r = user.client.post("/uploads", json={"mime_type": mime_type, "size": size})
    assert r.status_code == 201, r.text
    return r.json()


def send_file(upload: dict, content: bytes, content_type: str | None = None) -> None:
    """The phone's side: a multipart POST of the presigned fields, then the file, to S3 itself."""
    r = httpx.post(upload["url"], data=upload["fields"],
                   files={"file": ("photo", content, content_type or upload["fields"]["Content-Type"])}, timeout=60)
    assert r.status_code in (200, 201, 204), r.text


def uploaded(user, content: bytes, mime_type: str = "image/png") -> dict:
    """An upload whose file is in S3, ready for a turn to name."""
    upload = new_upload(user, mime_type, len(content))
    send_file(upload, content)
    return upload


def exists(s3, bucket: str, key: str) -> bool:
    """The object ``key`` is in the bucket."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchKey"), e.response
        return False


def upload_row(db_conn, upload_id: str) -> dict:
    return db_conn.execute("SELECT * FROM uploads WHERE id = %s", (upload_id,)).fetchone()
