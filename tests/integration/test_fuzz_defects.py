"""What a fuzzing run of the served API and an authorization sweep turned up, each held here against
the real local stack:

- an event id written with digits ``int`` refuses (superscripts) or other scripts' digits is a 422
  naming the header or parameter, never a 500 nor read as a number;
- a turn refused after its photos were put in S3 leaves no object of its own (an object a stored
  message names stays; a later turn with the same photo stores it again);
- a 405 names every method of the path, in each function's app and in the combined local server;
- nothing is sent past a turn's stored final event, whatever ``Last-Event-ID`` says;
- POST /me/export answers a ready export made within the cooldown instead of building another;
- an upload whose bytes are not of its declared type is refused by the turn that uses it (422).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from chatcore.wire import sse
from tests.support.images import LARGE_PNG, SMALL_PNG, b64, noise_png, normalised
from tests.support.uploads import uploaded

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM), (r.status_code, r.text)
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status, problem
    if field is not None:
        assert problem["field"] == field, problem
    return problem


def completed(user, sid: str, **body) -> list[dict]:
    r, events = user.turn(sid, **body)
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", (r.status_code, r.text[-500:])
    return events


# --------------------------------------------------------------------------- event ids that are not ASCII digits


@pytest.fixture()
def finished_turn(user, standin) -> tuple[str, str, list[dict]]:
    sid = user.new_session()
    standin.script([{"text": "four words of answer"}])
    events = completed(user, sid, message="hello", client_turn_id="fuzz-turn-1")
    return sid, events[0]["data"]["run_id"], events


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9", b"1\xb2", "\u0661".encode("utf-8")])
def test_a_last_event_id_of_other_digits_is_a_422_naming_the_header(user, finished_turn, value):
    """Latin-1 on the wire: ``\\xb2`` arrives as '²' (``isdigit`` says yes, ``int`` refuses it)."""
    sid, run_id, _ = finished_turn
    r = user.client.get(f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": value})
    assert_problem(r, 422, "invalid-input", "Last-Event-ID")


@pytest.mark.parametrize("after", ["%C2%B2", "%C2%B9", "%D9%A1", "%EF%BC%91"])  # ², ¹, Arabic-Indic 1, fullwidth 1
def test_an_after_of_other_digits_is_a_422_naming_the_parameter(user, finished_turn, after):
    sid, run_id, _ = finished_turn
    r = user.client.get(f"/sessions/{sid}/turns/{run_id}/events?after={after}")
    assert_problem(r, 422, "invalid-input", "after")


def test_a_turn_s_last_event_id_of_other_digits_is_a_422_and_runs_nothing(user, standin, db_conn):
    sid = user.new_session()
    standin.reset()
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "hi", "client_turn_id": "fuzz-sup"},
                         headers={"Last-Event-ID": b"\xb9"})
    assert_problem(r, 422, "invalid-input", "Last-Event-ID")
    assert standin.requests() == []
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0


def test_a_content_length_of_other_digits_is_refused_before_the_app():
    """The body limit reads Content-Length; a value ``int`` cannot read is refused, never a 500."""
    import asyncio

    from chatcore.web.app import LimitBody

    called, sent = [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    for value in (b"\xb2", "\u0661".encode("utf-8"), b"12a"):
        called.clear(), sent.clear()
        scope = {"type": "http", "method": "POST", "path": "/sessions", "headers": [(b"content-length", value)]}
        asyncio.run(LimitBody(app)(scope, receive, send))
        assert called == [] and sent[0]["status"] == 413, (value, sent[:1])


# --------------------------------------------------------------------------- a refused turn's photos


def session_objects(s3, bucket: str, sid: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("Contents", [])
    return {o["Key"] for o in listed}


def photo_key(sid: str, original: bytes) -> str:
    from chatcore.media import keys
    from chatcore.media.images import sniff_image_type

    stored = normalised(original)
    return keys.media_key("media/", sid, stored, sniff_image_type(stored))


def running_turn(db_conn, sid: str) -> uuid.UUID:
    """A turn of the session that is running (as another instance would have it)."""
    run_id = uuid.uuid4()
    db_conn.execute("INSERT INTO runs (id, session_id, agent_name, status) VALUES (%s, %s, 'assistant', 'running')",
                    (run_id, sid))
    return run_id


def test_a_turn_refused_while_another_runs_leaves_no_photo_and_the_same_photo_later_is_stored(
        user, standin, db_conn, s3, bucket):
    sid = user.new_session()
    running = running_turn(db_conn, sid)
    photo = noise_png(120, 90, seed=71)
    r, _ = user.turn(sid, message="look", images=[{"data": b64(photo)}, {"data": b64(SMALL_PNG)}])
    assert_problem(r, 409, "turn-in-progress")
    assert session_objects(s3, bucket, sid) == set()

    # once the other turn is over, the same photos make a turn whose objects are there (this process
    # does not take them for stored)
    db_conn.execute("UPDATE runs SET status = 'failed', finished_at = now() WHERE id = %s", (running,))
    standin.reset()
    completed(user, sid, message="look again", images=[{"data": b64(photo)}, {"data": b64(SMALL_PNG)}])
    assert session_objects(s3, bucket, sid) == {photo_key(sid, photo), photo_key(sid, SMALL_PNG)}


def test_a_reused_client_turn_id_leaves_no_photo_of_its_own_and_keeps_those_stored_messages_name(
        user, standin, db_conn, s3, bucket):
    sid = user.new_session()
    standin.reset()
    completed(user, sid, message="two photos", client_turn_id="fuzz-reused",
              images=[{"data": b64(LARGE_PNG)}, {"data": b64(SMALL_PNG)}])
    kept = {photo_key(sid, LARGE_PNG), photo_key(sid, SMALL_PNG)}  # by reference, and kept inline in the row
    assert session_objects(s3, bucket, sid) == kept
    new_photo = noise_png(100, 80, seed=72)
    r, _ = user.turn(sid, message="another message", client_turn_id="fuzz-reused",
                     images=[{"data": b64(LARGE_PNG)}, {"data": b64(new_photo)}, {"data": b64(SMALL_PNG)}])
    assert_problem(r, 409, "client-turn-id-reused")
    assert session_objects(s3, bucket, sid) == kept
    # the stored turn's photos are still served
    page = user.client.get(f"/sessions/{sid}/messages").json()
    urls = [image["url"] for message in page["items"] for image in message["images"]]
    assert sorted(httpx.get(url).content for url in urls) == sorted(
        [normalised(LARGE_PNG), normalised(SMALL_PNG)])


def test_a_retry_answered_by_its_stored_turn_leaves_no_photo_of_its_own(user, standin, s3, bucket):
    """Same client_turn_id, same message and number of photos: the stored turn answers; photos the
    retry sent that the stored turn does not hold are not kept."""
    sid = user.new_session()
    standin.reset()
    first = completed(user, sid, message="a photo", client_turn_id="fuzz-retry", images=[{"data": b64(LARGE_PNG)}])
    r, replayed = user.turn(sid, message="a photo", client_turn_id="fuzz-retry",
                            images=[{"data": b64(noise_png(90, 90, seed=73))}])
    assert r.status_code == 200 and [e["id"] for e in replayed] == [e["id"] for e in first]
    assert session_objects(s3, bucket, sid) == {photo_key(sid, LARGE_PNG)}


# --------------------------------------------------------------------------- 405 names every method of the path


def function_apps() -> dict[str, object]:
    for folder in ("functions/api", "functions/chat", "functions/events"):
        if str(ROOT / folder) not in sys.path:
            sys.path.insert(0, str(ROOT / folder))
    import api_app
    import chat_api
    import events_app

    return {"api": api_app.app, "chat": chat_api.app, "events": events_app.app}


SID, RUN = str(uuid.uuid4()), str(uuid.uuid4())
# (function, path, a method it does not have, every method it has)
PATHS = [
    ("api", "/sessions", "PUT", {"GET", "POST"}),
    ("api", f"/sessions/{SID}", "PUT", {"GET", "PATCH", "DELETE"}),
    ("api", f"/sessions/{SID}", "POST", {"GET", "PATCH", "DELETE"}),
    ("api", "/me/export", "DELETE", {"GET", "POST"}),
    ("api", "/me", "POST", {"DELETE"}),
    ("chat", f"/sessions/{SID}/turns", "GET", {"POST"}),
    ("events", f"/sessions/{SID}/turns/{RUN}/events", "POST", {"GET", "HEAD"}),
]


def allowed(r: httpx.Response) -> set[str]:
    assert_problem(r, 405, "method-not-allowed")
    return {m.strip() for m in r.headers["allow"].split(",")}


@pytest.mark.parametrize(("function", "path", "method", "methods"), PATHS)
def test_a_405_of_a_function_names_every_method_of_the_path(function, path, method, methods):
    client = TestClient(function_apps()[function])  # no lifespan: a 405 needs no settings
    assert allowed(client.request(method, path)) == methods


@pytest.mark.parametrize(("function", "path", "method", "methods"), PATHS)
def test_a_405_of_the_local_server_names_every_method_of_the_path(server_url, function, path, method, methods):
    assert allowed(httpx.request(method, f"{server_url}{path}")) == methods


# --------------------------------------------------------------------------- nothing past the final event


def stream(user, sid: str, run_id: str, last_event_id: str) -> tuple[httpx.Response, list[dict]]:
    r = user.client.get(f"/sessions/{sid}/turns/{run_id}/events", headers={"Last-Event-ID": last_event_id})
    return r, sse.parse(r.text) if r.status_code == 200 else []


def test_nothing_is_sent_at_or_past_a_stored_final_event(user, finished_turn):
    """A resume at or past the final event is a 204 (an EventSource stops reconnecting), at once."""
    sid, run_id, events = finished_turn
    final = int(events[-1]["id"])
    for last in (str(final), str(final + 1), "999999999"):
        started = time.monotonic()
        r, sent = stream(user, sid, run_id, last)
        assert r.status_code == 204 and r.content == b"" and r.headers["x-run-id"] == run_id, (last, r.text)
        assert time.monotonic() - started < 5  # answered from what is stored, not after a wait
    assert user.client.get(f"/sessions/{sid}/turns/{run_id}/events?after={final}").status_code == 204
    r, sent = stream(user, sid, run_id, str(final - 1))
    assert [(e["id"], e["event"]) for e in sent] == [(events[-1]["id"], "TurnCompleted")]
    # a retried turn (same client_turn_id) that says it has every event gets none either: an empty 200,
    # not a 204 (hey-api's stream function takes a body-less answer for a failure and sends it again)
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": "hello", "client_turn_id": "fuzz-turn-1"},
                         headers={"Last-Event-ID": "999999999"})
    assert r.status_code == 200 and r.text == "" and r.headers["x-run-id"] == run_id


# --------------------------------------------------------------------------- the export's cooldown


def ready_export(user) -> dict:
    r = user.client.post("/me/export")
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    return r.json()


def test_a_ready_export_within_the_cooldown_is_answered_as_it_is(user, settings_env, db_conn):
    user.new_session()
    first = ready_export(user)
    again = ready_export(user)
    assert again["id"] == first["id"] and again["finished_at"] == first["finished_at"]
    assert httpx.get(again["url"]).status_code == 200
    count = "SELECT count(*) AS n FROM exports e JOIN users u ON u.id = e.user_id WHERE u.sub = %s"
    assert db_conn.execute(count, (user.sub,)).fetchone()["n"] == 1
    # past the cooldown (here: none), a POST builds a new one
    settings_env.setenv("EXPORT_COOLDOWN_SECONDS", "0")
    from chatcore.config import get_settings

    get_settings.cache_clear()
    fresh = ready_export(user)
    assert fresh["id"] != first["id"]
    assert db_conn.execute(count, (user.sub,)).fetchone()["n"] == 2


def test_a_negative_export_cooldown_fails_at_start_up(settings_env):
    from chatcore.config import get_settings

    settings_env.setenv("EXPORT_COOLDOWN_SECONDS", "-1")
    get_settings.cache_clear()
    with pytest.raises(RuntimeError, match="EXPORT_COOLDOWN_SECONDS"):
        get_settings()


# --------------------------------------------------------------------------- an upload's declared type


@pytest.mark.parametrize(("declared", "sent"), [("image/jpeg", LARGE_PNG), ("image/png", None)])
def test_an_upload_whose_bytes_are_not_its_declared_type_is_refused_by_the_turn(user, standin, db_conn, declared,
                                                                                sent):
    from tests.support.images import LARGE_STORED

    content = sent if sent is not None else LARGE_STORED  # a JPEG (the normalised photo) declared a PNG
    upload = uploaded(user, content, declared)
    sid = user.new_session()
    standin.reset()
    r, _ = user.turn(sid, message="look", images=[{"data": b64(SMALL_PNG)}, {"upload_id": upload["upload_id"]}])
    problem = assert_problem(r, 422, "invalid-image", "images[1].upload_id")
    assert declared in problem["detail"]
    assert standin.requests() == []
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0


def test_a_declared_type_and_the_type_read_from_the_bytes_are_compared_as_kinds_of_file():
    """An iPhone's HEIC says image/heif as often as image/heic: the same kind of file."""
    from chatcore.media.images import same_type

    assert same_type("image/heif", "image/heic") and same_type("image/jpg", "image/jpeg")
    assert same_type("IMAGE/PNG", "image/png") and not same_type("image/png", "image/jpeg")
