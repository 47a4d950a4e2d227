"""Bad input to the chat API: a clear 4xx ``application/problem+json`` with a stable ``code``, the
model never called, and nothing already stored lost or changed.

Bad inputs tried, on POST /sessions and POST /sessions/{id}/turns unless noted:
- a body that is not JSON (truncated, garbage), a JSON array, an empty body, a text/plain body;
- wrong types (number for a string, string for a list, number for image data);
- unknown fields (top level and inside an image);
- sessions: both agent and team, neither, an unknown agent or team (404), a title over 200
  characters, agent names that are SQL injection or path traversal;
- turns: an empty or blank message with no images, a message over 32,000 characters,
  a client_turn_id that is too long, SQL injection or path traversal, an image that is not
  base64, base64 of bytes that are not an image, a JPEG sent as ``image/png``, a mime_type we do
  not accept, an image over 5 MB decoded (413), 21 images, an invalid session UUID in the path,
  a well-formed unknown session id (404), another user's session (404);
- text with a NUL character or a lone UTF-16 surrogate (Postgres cannot store either);
- identity: no Authorization, a bearer that is not a JWT, a non-bearer scheme, a JWT without
  ``sub``, a JWT whose payload is not JSON;
- a body over the server's body limit: announced by Content-Length, sent in full, and sent chunked
  without a Content-Length (413).
Accepted as data, stored verbatim, tables intact: SQL injection and path traversal strings in
the message, the title and client_turn_id; and a ``data:`` URL prefix on an image's base64.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from chatcore.web.identity import unsigned_jwt
from tests.support.images import LARGE_PNG, SMALL_PNG, b64, noise_png, normalised

PROBLEM = "application/problem+json"
TABLES = ("users", "agents", "teams", "team_members", "sessions", "prices", "fx_rates", "runs",
          "chat_events", "schema_migrations")
SQL_INJECTION = "x'); DROP TABLE chat_events; DROP TABLE sessions; --"
PATH_TRAVERSAL = "../../../../etc/passwd"

# A minimal JPEG: SOI, a JFIF APP0 segment, EOI. Its magic bytes say JPEG, whatever it claims.
def _jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 120, 40)).save(out, "JPEG", quality=90)
    return out.getvalue()


JPEG = _jpeg()  # a real (decodable) 16x12 JPEG
FIVE_MB = 5 * 1024 * 1024
MAX_BODY = 30 * 1024 * 1024  # the most the API ever accepts (20 images of 5 MB)


# --------------------------------------------------------------------------- helpers


def assert_problem(r: httpx.Response, status: int, code: str, detail: str | None = None) -> dict:
    """The response is an RFC 9457 problem with this status and code; returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0].strip() == PROBLEM, r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(f"/{code}")
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if detail is not None:
        assert detail.lower() in body["detail"].lower(), body["detail"]
    return body


def table_counts(db_conn) -> dict[str, int]:
    return {t: db_conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def session_snapshot(db_conn, sid: str) -> dict:
    """Everything stored for one session, to compare before and after bad requests."""
    return {
        "session": db_conn.execute("SELECT * FROM sessions WHERE id = %s", (sid,)).fetchone(),
        "runs": db_conn.execute("SELECT * FROM runs WHERE session_id = %s ORDER BY id", (sid,)).fetchall(),
        "messages": db_conn.execute(
            "SELECT id, run_id, role, message_parts::text AS parts, cost_usd FROM chat_events "
            "WHERE session_id = %s ORDER BY id", (sid,)).fetchall(),
    }


class Seeded:
    """A user's session with one completed turn, and a snapshot of the whole database."""

    def __init__(self, user, standin, db_conn):
        self.user, self.standin, self.db = user, standin, db_conn
        self.sid = user.new_session()
        _, events = user.turn(self.sid, message="What is 6 * 7?")
        assert events[-1]["event"] == "TurnCompleted", events[-1]
        self.snapshot = session_snapshot(db_conn, self.sid)
        assert [e["role"] for e in self.snapshot["messages"]] == ["user", "assistant", "tool", "assistant"]
        self.counts = table_counts(db_conn)
        standin.reset()

    def post_turn(self, body=None, *, content: bytes | None = None, headers: dict | None = None,
                  sid: str | None = None) -> httpx.Response:
        url = f"/sessions/{sid or self.sid}/turns"
        if content is not None:
            return self.user.client.post(url, content=content,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        return self.user.client.post(url, json=body, headers=headers)

    def assert_untouched(self) -> None:
        """Nothing was stored or changed and the model was not called; a good turn still works."""
        assert self.standin.requests() == []
        # a caller's users row is created the first time its sub is seen, even on a refused request
        assert {k: v for k, v in table_counts(self.db).items() if k != "users"} == {
            k: v for k, v in self.counts.items() if k != "users"}
        assert session_snapshot(self.db, self.sid) == self.snapshot
        _, events = self.user.turn(self.sid, message="And 7 * 8?")
        assert events[-1]["event"] == "TurnCompleted", events[-1]
        after = session_snapshot(self.db, self.sid)
        assert after["messages"][:4] == self.snapshot["messages"] and len(after["messages"]) == 8
        # the good turn replayed the stored first turn to the model
        assert "What is 6 * 7?" in json.dumps(self.standin.requests()[0]["body"]["messages"])


@pytest.fixture()
def seeded(user, standin, db_conn) -> Seeded:
    return Seeded(user, standin, db_conn)


def bearer(claims_part: str) -> dict:
    return {"Authorization": f"Bearer eyJhbGciOiJub25lIn0.{claims_part}.sig"}


def b64url(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


# --------------------------------------------------------------------------- POST /sessions


RAW_SESSION_BODIES = [
    pytest.param(b'{"agent": "assistant"', "not valid JSON", id="truncated-json"),
    pytest.param(b"agent=assistant", "not valid JSON", id="form-encoded"),
    pytest.param(b'{"agent": "assistant",}', "not valid JSON", id="trailing-comma"),
]


@pytest.mark.parametrize("content, detail", RAW_SESSION_BODIES)
def test_session_malformed_json_is_422(seeded, content, detail):
    r = seeded.user.client.post("/sessions", content=content, headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "invalid-input", detail)
    seeded.assert_untouched()


BAD_SESSION_BODIES = [
    pytest.param({"agent": 5}, "agent", id="agent-number"),
    pytest.param({"agent": ["assistant"]}, "agent", id="agent-list"),
    pytest.param({"agent": "assistant", "title": {"x": 1}}, "title", id="title-object"),
    pytest.param([{"agent": "assistant"}], None, id="json-array"),
    pytest.param("assistant", None, id="json-string"),
    pytest.param({"agent": "assistant", "model": "claude-opus"}, "model", id="unknown-field"),
    pytest.param({"agent": "assistant", "user_id": str(uuid.uuid4())}, "user_id", id="unknown-field-user-id"),
    pytest.param({"agent": "assistant", "team": "research"}, None, id="agent-and-team"),
    pytest.param({}, None, id="neither-agent-nor-team"),
    pytest.param({"title": "hello"}, None, id="title-only"),
    pytest.param({"agent": "assistant", "title": "t" * 201}, "title", id="title-too-long"),
    pytest.param({"agent": SQL_INJECTION}, "agent", id="agent-sql-injection"),
    pytest.param({"agent": PATH_TRAVERSAL}, "agent", id="agent-path-traversal"),
    pytest.param({"team": "../teams/secret"}, "team", id="team-path-traversal"),
    pytest.param({"agent": "Assistant"}, "agent", id="agent-uppercase"),
    pytest.param({"agent": ""}, "agent", id="agent-empty"),
    pytest.param({"agent": "assistant", "title": "nul\u0000byte"}, "title", id="title-nul"),
    pytest.param({"agent": "assistant", "title": "lone \ud800 surrogate"}, "title", id="title-lone-surrogate"),
]


@pytest.mark.parametrize("body, field", BAD_SESSION_BODIES)
def test_session_bad_fields_are_422(seeded, body, field):
    r = seeded.user.client.post("/sessions", content=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
    problem = assert_problem(r, 422, "invalid-input")
    assert problem["errors"], problem
    if field is not None:
        assert any(field in e["loc"] for e in problem["errors"]), problem["errors"]
    seeded.assert_untouched()


def test_session_agent_and_team_message_names_the_rule(user):
    for body in ({"agent": "assistant", "team": "research"}, {}):
        problem = assert_problem(user.client.post("/sessions", json=body), 422, "invalid-input")
        assert any("exactly one of 'agent' or 'team'" in e["msg"] for e in problem["errors"]), problem


@pytest.mark.parametrize("body, content_type", [
    pytest.param(b"", "application/json", id="empty-body"),
    pytest.param(b'{"agent": "assistant"}', "text/plain", id="text-plain"),
])
def test_session_missing_or_non_json_body_is_422(seeded, body, content_type):
    r = seeded.user.client.post("/sessions", content=body, headers={"Content-Type": content_type})
    assert_problem(r, 422, "invalid-input")
    seeded.assert_untouched()


@pytest.mark.parametrize("body, detail", [
    pytest.param({"agent": "no-such-agent"}, "no agent named 'no-such-agent'", id="unknown-agent"),
    pytest.param({"team": "no-such-team"}, "no team named 'no-such-team'", id="unknown-team"),
])
def test_session_unknown_agent_or_team_is_404_and_creates_nothing(seeded, server_url, db_conn, body, detail):
    newcomer = type(seeded.user)(server_url)
    assert_problem(newcomer.client.post("/sessions", json=body), 404, "not-found", detail)
    # the user row exists (created the first time a sub is seen) but no session was created
    user_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (newcomer.sub,)).fetchone()["id"]
    assert db_conn.execute("SELECT count(*) AS n FROM sessions WHERE user_id = %s", (user_id,)).fetchone()["n"] == 0
    assert_problem(seeded.user.client.post("/sessions", json=body), 404, "not-found", detail)
    seeded.assert_untouched()


def test_session_text_fields_with_sql_and_paths_are_stored_as_data(user, db_conn):
    before = table_counts(db_conn)
    for title in (SQL_INJECTION, PATH_TRAVERSAL, "Robert'); DROP TABLE users;--", "%s %(sub)s {0} \\x00"):
        r = user.client.post("/sessions", json={"agent": "assistant", "title": title})
        assert r.status_code == 201, r.text
        assert r.json()["title"] == title
        row = db_conn.execute("SELECT title FROM sessions WHERE id = %s", (r.json()["id"],)).fetchone()
        assert row["title"] == title
    after = table_counts(db_conn)
    assert after["sessions"] == before["sessions"] + 4
    assert {k: v for k, v in after.items() if k not in ("sessions", "users")} == \
        {k: v for k, v in before.items() if k not in ("sessions", "users")}


# --------------------------------------------------------------------------- identity


def _auth_cases():
    return [
        pytest.param(None, id="no-authorization"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, id="bearer-not-a-jwt"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": f"Bearer {unsigned_jwt({'sub': chr(0xD800)})}"}, id="jwt-lone-surrogate-sub"),
        pytest.param({"Authorization": f"Bearer {unsigned_jwt({'sub': 'a' * 256})}"}, id="jwt-sub-too-long"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
        pytest.param({"Authorization": unsigned_jwt({"sub": "x"})}, id="jwt-without-bearer-scheme"),
        pytest.param({"Authorization": f"Bearer {unsigned_jwt({'email': 'a@b.c'})}"}, id="jwt-without-sub"),
        pytest.param({"Authorization": f"Bearer {unsigned_jwt({'sub': ''})}"}, id="jwt-empty-sub"),
        pytest.param({"Authorization": f"Bearer {unsigned_jwt({'sub': 42})}"}, id="jwt-number-sub"),
        pytest.param({"Authorization": f"Bearer {unsigned_jwt({'sub': 'nul' + chr(0)})}"}, id="jwt-nul-sub"),
        pytest.param(bearer("!!!notbase64!!!"), id="jwt-payload-not-base64"),
        pytest.param(bearer(base64.urlsafe_b64encode(b"not json").decode()), id="jwt-payload-not-json"),
        pytest.param(bearer(b64url(["sub", "x"])), id="jwt-payload-a-list"),
        pytest.param({"x-amzn-request-context": "{not json"}, id="request-context-not-json"),
        pytest.param({"x-amzn-request-context": "[1, 2]"}, id="request-context-a-list"),
        pytest.param({"x-amzn-request-context": json.dumps({"authorizer": "yes"})}, id="request-context-authorizer-string"),
        pytest.param({"x-amzn-request-context": json.dumps({"authorizer": {"claims": {}}})}, id="request-context-no-sub"),
    ]


@pytest.mark.parametrize("headers", _auth_cases())
def test_session_without_identity_is_401(seeded, server_url, headers):
    r = httpx.post(f"{server_url}/sessions", json={"agent": "assistant"}, headers=headers or {})
    assert_problem(r, 401, "unauthorized")
    seeded.assert_untouched()


@pytest.mark.parametrize("headers", _auth_cases())
def test_turn_without_identity_is_401(seeded, server_url, headers):
    r = httpx.post(f"{server_url}/sessions/{seeded.sid}/turns", json={"message": "hi"}, headers=headers or {})
    assert_problem(r, 401, "unauthorized")
    seeded.assert_untouched()


# --------------------------------------------------------------------------- POST /sessions/{id}/turns


@pytest.mark.parametrize("content", [
    pytest.param(b'{"message": "hi"', id="truncated"),
    pytest.param(b"message=hi", id="form-encoded"),
    pytest.param(b'{"message": "hi"}}', id="extra-brace"),
    pytest.param(b"\xff\xfe\x00garbage", id="binary"),
])
def test_turn_malformed_json_is_422(seeded, content):
    assert_problem(seeded.post_turn(content=content), 422, "invalid-input", "not valid JSON")
    seeded.assert_untouched()


BAD_TURN_BODIES = [
    pytest.param({"message": 5}, "message", id="message-number"),
    pytest.param({"message": ["hi"]}, "message", id="message-list"),
    pytest.param({"message": "hi", "images": "abc"}, "images", id="images-string"),
    pytest.param({"message": "hi", "images": [b64(SMALL_PNG)]}, "images", id="image-bare-string"),
    pytest.param({"message": "hi", "images": [{"data": 5}]}, "data", id="image-data-number"),
    pytest.param({"message": "hi", "images": [{}]}, "data", id="image-without-data"),
    pytest.param({"message": "hi", "images": [{"data": ""}]}, "data", id="image-data-empty"),
    pytest.param({"message": "hi", "client_turn_id": 7}, "client_turn_id", id="client-turn-id-number"),
    pytest.param(["hi"], None, id="json-array"),
    pytest.param(None, None, id="json-null"),
    pytest.param({"message": "hi", "model": "claude-opus"}, "model", id="unknown-field"),
    pytest.param({"message": "hi", "session_id": str(uuid.uuid4())}, "session_id", id="unknown-field-session"),
    pytest.param({"message": "hi", "images": [{"data": b64(SMALL_PNG), "url": "http://x"}]}, "url",
                 id="unknown-image-field"),
    pytest.param({"message": "hi", "images": [{"data": b64(SMALL_PNG), "mime_type": "image/svg+xml"}]},
                 "mime_type", id="mime-type-not-accepted"),
    pytest.param({"message": "x" * 32_001}, "message", id="message-too-long"),
    pytest.param({"message": "hi", "images": [{"data": b64(SMALL_PNG)}] * 21}, "images", id="21-images"),
    pytest.param({"message": "hi", "client_turn_id": "a" * 129}, "client_turn_id", id="client-turn-id-too-long"),
    pytest.param({"message": "hi", "client_turn_id": ""}, "client_turn_id", id="client-turn-id-empty"),
    pytest.param({"message": "hi", "client_turn_id": SQL_INJECTION}, "client_turn_id",
                 id="client-turn-id-sql-injection"),
    pytest.param({"message": "hi", "client_turn_id": PATH_TRAVERSAL}, "client_turn_id",
                 id="client-turn-id-path-traversal"),
    pytest.param({"message": "nul \u0000 inside"}, "message", id="message-nul"),
    pytest.param({"message": "lone \udc00 surrogate"}, "message", id="message-lone-surrogate"),
]


@pytest.mark.parametrize("body, field", BAD_TURN_BODIES)
def test_turn_bad_fields_are_422(seeded, body, field):
    problem = assert_problem(seeded.post_turn(content=json.dumps(body).encode()), 422, "invalid-input")
    if field is not None:
        assert any(field in e["loc"] for e in problem["errors"]), problem["errors"]
    seeded.assert_untouched()


def test_turn_message_over_the_limit_names_the_field(seeded):
    problem = assert_problem(seeded.post_turn({"message": "é" * 32_001}), 422, "invalid-input")
    assert any(e["loc"][-1] == "message" and "32000" in e["msg"] for e in problem["errors"]), problem
    # exactly at the limit is accepted
    _, events = seeded.user.turn(seeded.sid, message="é" * 32_000)
    assert events[-1]["event"] == "TurnCompleted"


@pytest.mark.parametrize("body", [
    pytest.param({}, id="no-message"),
    pytest.param({"message": ""}, id="empty-message"),
    pytest.param({"message": "  \n\t "}, id="blank-message"),
    pytest.param({"message": "", "images": []}, id="empty-images"),
])
def test_turn_without_message_or_image_is_422(seeded, body):
    problem = assert_problem(seeded.post_turn(body), 422, "invalid-input", "needs a message or an image")
    assert problem.get("field") == "message"
    seeded.assert_untouched()


@pytest.mark.parametrize("image, detail", [
    pytest.param({"data": "not base64!!"}, "not valid base64", id="not-base64"),
    pytest.param({"data": b64(SMALL_PNG)[:-3]}, "not valid base64", id="truncated-base64"),
    pytest.param({"data": "data:image/png;base64,%%%%"}, "not valid base64", id="data-url-not-base64"),
    pytest.param({"data": b64(b"hello, this is plain text and not an image")}, "is not a PNG, JPEG, GIF, WebP, HEIC or AVIF",
                 id="text-bytes"),
    pytest.param({"data": b64(b"%PDF-1.7\n" + b"\x00" * 64)}, "is not a PNG, JPEG, GIF, WebP, HEIC or AVIF", id="pdf-bytes"),
    pytest.param({"data": b64(b"<svg xmlns='http://www.w3.org/2000/svg'/>")}, "is not a PNG, JPEG, GIF, WebP, HEIC or AVIF",
                 id="svg-bytes"),
    pytest.param({"data": b64(JPEG), "mime_type": "image/png"}, "is image/jpeg but mime_type says image/png",
                 id="jpeg-claimed-png"),
    pytest.param({"data": b64(SMALL_PNG), "mime_type": "image/gif"}, "is image/png but mime_type says image/gif",
                 id="png-claimed-gif"),
])
def test_turn_bad_image_is_422_invalid_image(seeded, image, detail):
    problem = assert_problem(seeded.post_turn({"message": "look", "images": [image]}), 422, "invalid-image", detail)
    assert problem["field"].startswith("images[0].")
    seeded.assert_untouched()


def test_turn_second_bad_image_is_named_and_nothing_is_uploaded(seeded, stack):
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    listing = lambda: s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"],  # noqa: E731
                                         Prefix=f"media/{seeded.sid}-").get("KeyCount", 0)
    r = seeded.post_turn({"message": "two", "images": [{"data": b64(LARGE_PNG)}, {"data": b64(JPEG),
                                                                                    "mime_type": "image/png"}]})
    problem = assert_problem(r, 422, "invalid-image", "images[1]")
    assert problem["field"] == "images[1].mime_type"
    assert listing() == 0
    seeded.assert_untouched()


def _flat_png(width: int, height: int, mode: str = "RGB") -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, (width, height), 1 if mode == "1" else (40, 90, 160)).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize("image, limit", [
    pytest.param(_flat_png(9_000, 7_000), "IMAGE_MAX_DECODE_PIXELS", id="63-megapixel-png"),
    pytest.param(_flat_png(7_900, 7_900, "1"), "IMAGE_MAX_DECODE_PIXELS", id="one-bit-7900x7900-png"),
])
def test_turn_photo_over_the_pixel_limit_is_422_naming_it(seeded, image, limit):
    problem = assert_problem(seeded.post_turn({"message": "look", "images": [{"data": b64(image)}]}), 422,
                             "invalid-image", limit)
    assert problem["field"] == "images[0].data" and "50,000,000" in problem["detail"]
    seeded.assert_untouched()


def test_turn_photos_past_the_turn_pixel_budget_are_422_naming_it(seeded):
    # two photos of 40 MP each: each within IMAGE_MAX_DECODE_PIXELS, together past the turn's 64 MP
    photos = [{"data": b64(_flat_png(8_000, 5_000))}, {"data": b64(_flat_png(5_000, 8_000))}]
    problem = assert_problem(seeded.post_turn({"message": "two big ones", "images": photos}), 422,
                             "invalid-image", "IMAGE_MAX_DECODE_PIXELS_PER_TURN")
    assert problem["field"] == "images[1].data" and "64,000,000" in problem["detail"]
    seeded.assert_untouched()
    # one of them alone is a normal turn
    _, events = seeded.user.turn(seeded.sid, message="one big one", images=photos[:1])
    assert events[-1]["event"] == "TurnCompleted", events[-1]


def test_turn_image_over_5_mb_is_413(seeded):
    # over HTTP, a 5 MB image's base64 is already past the 6 MB body limit (Lambda's payload limit)
    too_big = SMALL_PNG + b"\x00" * (FIVE_MB + 1 - len(SMALL_PNG))
    assert len(too_big) == FIVE_MB + 1
    r = seeded.post_turn({"message": "big", "images": [{"data": b64(too_big), "mime_type": "image/png"}]})
    assert_problem(r, 413, "payload-too-large", "the body is larger than")
    seeded.assert_untouched()


def test_turn_image_of_4_mb_is_accepted_and_stored_normalised(seeded, db_conn):
    four_mb = noise_png(1190, 1190, seed=5)  # 1190 x 1190 of noise: ~4.25 MB as a PNG
    assert len(four_mb) > 4 * 1024 * 1024
    _, events = seeded.user.turn(seeded.sid, message="big", images=[{"data": b64(four_mb)}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    row = db_conn.execute("SELECT message_parts FROM chat_events WHERE run_id = %s ORDER BY id LIMIT 1",
                          (events[-1]["data"]["run_id"],)).fetchone()
    ref = row["message_parts"]["images"][0]["media_reference"]
    assert ref["size"] == len(normalised(four_mb)) < 1024 * 1024 and ref["mime_type"] == "image/jpeg"


def test_turn_data_url_prefix_is_accepted(seeded, db_conn):
    for image in (SMALL_PNG, JPEG):
        kind = "png" if image is SMALL_PNG else "jpeg"
        _, events = seeded.user.turn(seeded.sid, message=f"a {kind}",
                                     images=[{"data": f"data:image/{kind};base64,{b64(image)}"}])
        assert events[-1]["event"] == "TurnCompleted", events[-1]
        row = db_conn.execute("SELECT message_parts FROM chat_events WHERE run_id = %s ORDER BY id LIMIT 1",
                              (events[-1]["data"]["run_id"],)).fetchone()
        stored = row["message_parts"]["images"][0]
        assert base64.b64decode(stored["content"]) == normalised(image) and stored["mime_type"] == f"image/{kind}"
    sent = [b for req in seeded.standin.requests() for m in req["body"]["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "image"]
    assert base64.b64decode(sent[-1]["source"]["data"]) == normalised(JPEG)


@pytest.mark.parametrize("session_id", [
    pytest.param("not-a-uuid", id="word"),
    pytest.param("12345", id="number"),
    pytest.param(str(uuid.uuid4())[:-1], id="short-uuid"),
    pytest.param("x'%20OR%20'1'='1", id="sql-injection"),
])
def test_turn_invalid_session_id_in_path_is_422(seeded, session_id):
    problem = assert_problem(seeded.post_turn({"message": "hi"}, sid=session_id), 422, "invalid-input")
    assert any("session_id" in e["loc"] for e in problem["errors"]), problem
    seeded.assert_untouched()


@pytest.mark.parametrize("path", [
    "/sessions/..%2F..%2Fetc%2Fpasswd/turns",
    "/sessions/{sid}%2F..%2F..%2Fetc%2Fpasswd/turns",
    "/sessions/{sid}/turns/..%2F..%2Fsessions",
])
def test_turn_path_traversal_in_the_route_is_404(seeded, path):
    r = seeded.user.client.post(path.format(sid=seeded.sid), json={"message": "hi"})
    assert_problem(r, 404, "not-found", "no such route")
    seeded.assert_untouched()


def test_turn_unknown_session_is_404(seeded):
    assert_problem(seeded.post_turn({"message": "hi"}, sid=str(uuid.uuid4())), 404, "not-found", "no such session")
    seeded.assert_untouched()


def test_turn_in_another_users_session_is_404_and_stores_nothing(seeded, other_user, db_conn):
    r = seeded.post_turn({"message": "let me in"}, headers=other_user.headers)
    assert_problem(r, 404, "not-found", "no such session")
    r2 = other_user.client.post(f"/sessions/{seeded.sid}/turns",
                                json={"message": "again", "client_turn_id": "steal-1"})
    assert_problem(r2, 404, "not-found", "no such session")
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE client_turn_id = 'steal-1'").fetchone()["n"] == 0
    seeded.assert_untouched()
    # the other user's own session works and does not see the first user's history
    sid = other_user.new_session()
    n = len(seeded.standin.requests())
    _, events = other_user.turn(sid, message="mine")
    assert events[-1]["event"] == "TurnCompleted"
    assert "What is 6 * 7?" not in json.dumps(seeded.standin.requests()[n]["body"]["messages"])


def test_sql_injection_and_paths_in_turn_text_are_stored_as_data(seeded, db_conn):
    counts = table_counts(db_conn)
    texts = [SQL_INJECTION, PATH_TRAVERSAL, "'; DELETE FROM runs WHERE '1'='1", "$$; DROP SCHEMA public CASCADE; $$",
             "%s %(session_id)s {}", "..\\..\\windows\\system32"]
    run_ids = []
    for i, text in enumerate(texts):
        _, events = seeded.user.turn(seeded.sid, message=text, client_turn_id=f"..:{i}:-.._")
        assert events[-1]["event"] == "TurnCompleted", events[-1]
        run_ids.append(events[-1]["data"]["run_id"])
    for i, (text, run_id) in enumerate(zip(texts, run_ids)):
        run = db_conn.execute("SELECT client_turn_id FROM runs WHERE id = %s", (run_id,)).fetchone()
        assert run["client_turn_id"] == f"..:{i}:-.._"
        first = db_conn.execute("SELECT message_parts FROM chat_events WHERE run_id = %s ORDER BY id LIMIT 1",
                                (run_id,)).fetchone()
        assert first["message_parts"]["content"] == text
    after = table_counts(db_conn)
    assert after["runs"] == counts["runs"] + len(texts)
    assert after["sessions"] == counts["sessions"] and after["users"] == counts["users"]
    assert after["chat_events"] > counts["chat_events"]
    assert session_snapshot(db_conn, seeded.sid)["messages"][:4] == seeded.snapshot["messages"]


# --------------------------------------------------------------------------- body size


def _raw_post(server_url: str, path: str, headers: dict[str, str], first_chunk: bytes) -> tuple[int, dict, bytes]:
    """Send request headers and the start of a body over a socket; read the server's answer."""
    parts = urlsplit(server_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + first_chunk)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, body = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(hdrs.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, hdrs, body


@pytest.fixture(scope="module")
def body_limit(server_url) -> int:
    """The server's body limit, as its 413 problem states it (announced by Content-Length)."""
    status, headers, body = _raw_post(server_url, "/sessions", {
        "Content-Type": "application/json", "Content-Length": str(1 << 40)}, b"{")
    assert status == 413 and headers["content-type"] == PROBLEM
    match = re.search(r"larger than (\d+) bytes", json.loads(body)["detail"])
    assert match, body
    return int(match.group(1))


@pytest.mark.parametrize("path", ["/sessions", "/sessions/{sid}/turns"])
def test_body_over_the_limit_by_content_length_is_413_before_it_is_read(seeded, server_url, body_limit, path):
    assert body_limit <= MAX_BODY
    status, headers, body = _raw_post(server_url, path.format(sid=seeded.sid), {
        **seeded.user.headers, "Content-Type": "application/json", "Content-Length": str(body_limit + 1),
    }, b'{"message": "')
    assert status == 413 and headers["content-type"] == PROBLEM
    problem = json.loads(body)
    assert problem["code"] == "payload-too-large" and problem["status"] == 413
    assert f"larger than {body_limit} bytes" in problem["detail"]
    seeded.assert_untouched()


def test_body_over_the_limit_sent_in_full_is_413(seeded, body_limit):
    payload = json.dumps({"message": "x" * (body_limit + 10)}).encode()
    try:
        r = seeded.post_turn(content=payload)
    except httpx.TransportError:  # the server may answer and close before the upload ends
        pytest.fail("the server closed the connection without a 413 problem")
    assert_problem(r, 413, "payload-too-large", f"larger than {body_limit} bytes")
    seeded.assert_untouched()


def test_chunked_body_over_the_limit_is_413(seeded, body_limit):
    block = b"x" * (1024 * 1024)

    def chunks():
        yield b'{"message": "'
        for _ in range(body_limit // len(block) + 1):
            yield block
        yield b'"}'

    r = seeded.user.client.post(f"/sessions/{seeded.sid}/turns", content=chunks(),
                                headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert_problem(r, 413, "payload-too-large", f"larger than {body_limit} bytes")
    seeded.assert_untouched()


def test_chunked_body_under_the_limit_is_accepted(seeded):
    body = json.dumps({"message": "sent in chunks"}).encode()
    r = seeded.user.client.post(f"/sessions/{seeded.sid}/turns", content=iter([body[:7], body[7:]]),
                                headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.text.rstrip().splitlines()[-2] == "event: TurnCompleted", r.text[-300:]

