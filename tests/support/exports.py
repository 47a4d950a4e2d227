"""An account's export as a phone gets it: POST /me/export until it is built, its zip downloaded
through the presigned URL and read back."""

from __future__ import annotations

import io
import json
import time
import zipfile

import httpx


def exported(user, timeout: float = 30.0) -> dict:
    """POST /me/export, then GET /me/export until it is no longer building."""
    r = user.client.post("/me/export")
    assert r.status_code in (200, 202), r.text
    body = r.json()
    if r.status_code == 202:
        assert r.headers["location"] == "/me/export" and body["status"] == "building"
    deadline = time.monotonic() + timeout
    while body["status"] == "building":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
        r = user.client.get("/me/export")
        assert r.status_code == 200, r.text
        body = r.json()
    return body


def download(body: dict) -> zipfile.ZipFile:
    assert body["status"] == "ready", body
    r = httpx.get(body["url"], timeout=60)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="chat-export-')
    assert len(r.content) == body["size"]
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    return zf


def read_json(zf: zipfile.ZipFile, name: str) -> dict:
    return json.loads(zf.read(name))
