"""Exporting an account (POST and GET /me/export, ``chatcore.account.export``), end to end: turns run
against the stand-in model, photos in moto's S3, the zip built by the job, uploaded, downloaded
through its presigned URL and read back.

The zip holds everything of its user, each message exactly as GET /sessions/{id}/messages?include=thinking renders it
(an image naming its file in the zip instead of a URL), every photo as S3 holds it, the usage GET
/usage reports; and nothing of another user who has sessions and photos too (every file of the zip
is searched for that user's ids, texts and photo bytes). An export whose upload fails is ``failed``
and the next one succeeds; one whose row goes while it is built leaves no zip; the schedule prunes
expired, lost and old failed exports.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from psycopg.rows import dict_row

from tests.support.images import LARGE_PNG, SMALL_PNG, b64, noise_png, normalised
from tests.support.exports import download, exported, read_json
from tests.support.uploads import exists, uploaded
from tests.support import pg

PROBLEM = "application/problem+json"


def s3_objects(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def completed(user, sid: str, **body) -> dict:
    r, events = user.turn(sid, **body)
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", (r.status_code, r.text[-500:])
    return events[-1]["data"]


# --------------------------------------------------------------------------- everything, and nothing else


@dataclass
class Stored:
    """What the scenario stored for one user: sessions, uploads, the photos sent."""

    marker: str
    sessions: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, dict] = field(default_factory=dict)
    photos: dict[str, bytes] = field(default_factory=dict)


def the_users_account(user, db_conn) -> Stored:
    """An agent session with an inline photo, a tool call and a memory, one with an uploaded photo, a
    team session, a session deleted since (only its usage stays), an upload no turn used, a budget."""
    mine = Stored(f"mine-{uuid.uuid4().hex[:12]}")
    s1 = mine.sessions["photo"] = user.new_session()
    completed(user, s1, message=f"{mine.marker} small photo and 3 * 4", images=[{"data": b64(SMALL_PNG)}])
    completed(user, s1, message=f"{mine.marker} and again")
    completed(user, s1, message=f"Remember that my locker code is {mine.marker}")
    s2 = mine.sessions["upload"] = user.new_session()
    upload = mine.uploads["used"] = uploaded(user, LARGE_PNG)
    completed(user, s2, message=f"{mine.marker} a big photo", images=[{"upload_id": upload["upload_id"]}])
    team = mine.sessions["team"] = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    completed(user, team, message=f"{mine.marker} What is 6 * 7?")
    gone = mine.sessions["gone"] = user.new_session()
    completed(user, gone, message=f"{mine.marker} soon deleted")
    assert user.client.delete(f"/sessions/{gone}").status_code == 204
    mine.photos["waiting"] = noise_png(20, 20, seed=5)
    mine.uploads["waiting"] = uploaded(user, mine.photos["waiting"])
    db_conn.execute("UPDATE users SET monthly_budget_zar = 100 WHERE sub = %s", (user.sub,))
    return mine


def another_users_account(other_user) -> Stored:
    """Sessions, photos (not the user's: other bytes) and an upload of their own."""
    theirs = Stored(f"theirs-{uuid.uuid4().hex[:12]}")
    theirs.photos = {"small": noise_png(8, 8, seed=71), "large": noise_png(400, 300, seed=72),
                     "waiting": noise_png(20, 20, seed=73)}
    o1 = theirs.sessions["photos"] = other_user.new_session()
    completed(other_user, o1, message=f"{theirs.marker} photos",
              images=[{"data": b64(theirs.photos["small"])}, {"data": b64(theirs.photos["large"])}])
    o2 = theirs.sessions["team"] = other_user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    completed(other_user, o2, message=f"{theirs.marker} What is 5 * 9?")
    completed(other_user, o1, message=f"Remember that my locker code is {theirs.marker}")
    theirs.uploads["waiting"] = uploaded(other_user, theirs.photos["waiting"])
    return theirs


def assert_the_account_and_its_usage(account: dict, user, gone: str) -> None:
    """What GET /usage says, over all time, the deleted session included."""
    assert account["account"]["sub"] == user.sub and account["account"]["monthly_budget_zar"] == "100.00"
    usage = account["usage"]
    api_usage = user.client.get("/usage", params={"from": usage["from"], "to": usage["to"]}).json()
    for part in ("totals", "by_day", "by_agent", "budget"):
        assert usage[part] == api_usage[part], part
    assert usage["plan"] == api_usage["plan"] and usage["plan"]["name"] == "standard"  # the plan at export time
    assert usage["totals"]["turns"] == 6 and Decimal(usage["totals"]["cost"]["zar"]) > 0
    assert usage["budget"]["monthly_budget_zar"] == "100.00"
    kept = account["deleted_sessions_usage"]
    assert {k["session_id"] for k in kept} == {gone}
    assert sum(k["turns"] for k in kept) == 1 and sum(Decimal(k["cost"]["usd"]) for k in kept) > 0


def assert_the_uploads(account: dict, zf: zipfile.ZipFile, mine: Stored) -> None:
    """Both rows; the photo no turn used is in uploads/, as it was sent."""
    used, waiting = mine.uploads["used"]["upload_id"], mine.uploads["waiting"]["upload_id"]
    uploads = {u["id"]: u for u in account["uploads"]}
    assert set(uploads) == {used, waiting}
    assert uploads[used]["consumed_at"] is not None and uploads[used]["file"] is None
    assert uploads[waiting]["consumed_at"] is None
    assert zf.read(uploads[waiting]["file"]) == mine.photos["waiting"]


def assert_a_session_document(zf: zipfile.ZipFile, names: set[str], sid: str, entry: dict, user, db_conn, s3,
                              bucket: str) -> set[str]:
    """The session, its runs, its messages as the app renders them, and every object of the session,
    byte for byte, with nothing else under its folder; returns the photo files its messages name."""
    photo_files = set()
    doc = read_json(zf, entry["file"])
    assert entry["file"] == f"sessions/{sid}.json" and doc["session"]["id"] == sid
    detail = user.client.get(f"/sessions/{sid}").json()
    assert (doc["session"]["turns"], doc["session"]["cost"]) == (detail["turns"], detail["cost"])
    runs = db_conn.execute("SELECT id, status, cost_usd, parent_run_id FROM runs WHERE session_id = %s ORDER BY id",
                           (sid,)).fetchall()
    assert [(r["id"], r["status"], r["cost"]["usd"]) for r in doc["runs"]] == [
        (str(r["id"]), r["status"], format(r["cost_usd"], "f")) for r in runs]
    api_messages = user.client.get(f"/sessions/{sid}/messages", params={"limit": 200, "include": "thinking"}).json()["items"]
    assert len(doc["messages"]) == len(api_messages) == entry["messages"] > 0
    for ours, app in zip(doc["messages"], api_messages, strict=True):
        assert {k: v for k, v in ours.items() if k != "images"} == {k: v for k, v in app.items() if k != "images"}
        assert len(ours["images"]) == len(app["images"])
        for image, app_image in zip(ours["images"], app["images"], strict=True):
            assert (image["id"], image["mime_type"], image["size"]) == (
                app_image["id"], app_image["mime_type"], app_image["size"])
            assert zf.read(image["file"]) == httpx.get(app_image["url"]).content  # what S3 holds
            photo_files.add(image["file"])
    # every object of the session is in the zip, byte for byte, and nothing else under its folder
    objects = s3_objects(s3, bucket, f"media/{sid}-")
    in_zip = {n for n in names if n.startswith(f"photos/{sid}/")}
    assert in_zip == {f"photos/{sid}/{key.removeprefix(f'media/{sid}-')}" for key in objects}
    for key, content in objects.items():
        assert zf.read(f"photos/{sid}/{key.removeprefix(f'media/{sid}-')}") == content
    assert sorted(entry["photos"]) == sorted(in_zip)
    return photo_files


def assert_the_sessions_hold_every_message_and_photo(zf: zipfile.ZipFile, names: set[str], account: dict,
                                                     body: dict, mine: Stored, user, db_conn, s3, bucket: str):
    """Every session, in its own document; the texts sent, the team's member messages and runs, the
    photos as stored; the counts the export reports."""
    s1, s2, team = mine.sessions["photo"], mine.sessions["upload"], mine.sessions["team"]
    index = {s["id"]: s for s in account["sessions"]}
    assert set(index) == {s1, s2, team}
    assert index[team]["team"] == "planner" and index[s1]["agent"] == "assistant"
    photo_files = set()
    for sid, entry in index.items():
        photo_files |= assert_a_session_document(zf, names, sid, entry, user, db_conn, s3, bucket)
    texts = json.dumps([read_json(zf, s["file"])["messages"] for s in account["sessions"]])
    for text in (f"{mine.marker} small photo and 3 * 4", f"{mine.marker} and again", f"{mine.marker} a big photo",
                 f"{mine.marker} What is 6 * 7?"):
        assert text in texts
    team_doc = read_json(zf, index[team]["file"])
    assert any(m["member"] and m["agent_name"] == "calculator" for m in team_doc["messages"])
    assert any(r["parent_run_id"] is not None for r in team_doc["runs"])
    small = [m for m in read_json(zf, index[s1]["file"])["messages"] if m["images"]][0]["images"][0]
    assert zf.read(small["file"]) == normalised(SMALL_PNG)  # the inline photo, from its row
    assert zf.read([f for f in photo_files if f.startswith(f"photos/{s2}/")][0]) == normalised(LARGE_PNG)
    assert body["contents"] == {"sessions": 3, "messages": sum(s["messages"] for s in account["sessions"]),
                                "photos": len([n for n in names if n.startswith("photos/")]), "uploads": 2,
                                "memories": 1, "reminders": 0, "approvals": 0, "devices": 0, "documents": 0}
    assert body["contents"]["photos"] == 2


def assert_the_memories(zf: zipfile.ZipFile, mine: Stored, user, db_conn) -> None:
    """memories.json: the memory switch and every memory as GET /me/memories lists it, with the
    session and run that wrote it."""
    doc = read_json(zf, "memories.json")
    assert doc["format"] == "agent-chat-export/1" and doc["memory"] is True
    (memory,) = doc["memories"]
    assert memory["text"] == f"my locker code is {mine.marker}" and memory["session_id"] == mine.sessions["photo"]
    (listed,) = user.client.get("/me/memories").json()["items"]
    assert memory == {k: listed[k] for k in ("id", "text", "session_id", "run_id", "created_at", "updated_at")}
    run = db_conn.execute("SELECT session_id, parent_run_id FROM runs WHERE id = %s", (memory["run_id"],)).fetchone()
    assert str(run["session_id"]) == mine.sessions["photo"] and run["parent_run_id"] is None  # the turn
    assert "memories.json" in zf.read("README.txt").decode()


def assert_nothing_of_the_other_user(zf: zipfile.ZipFile, names: set[str], theirs: Stored, other_user,
                                     db_conn) -> None:
    """No id, no text, no photo (bytes or base64), no upload, in any file's name or content."""
    o1, o2 = theirs.sessions["photos"], theirs.sessions["team"]
    other_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (other_user.sub,)).fetchone()["id"]
    other_rows = db_conn.execute(
        "SELECT r.id AS run_id, ce.id AS message_id FROM runs r LEFT JOIN chat_events ce ON ce.run_id = r.id "
        "WHERE r.session_id = ANY(%s)", ([o1, o2],)).fetchall()
    assert other_rows
    forbidden_text = {other_user.sub, str(other_id), o1, o2, theirs.marker, theirs.uploads["waiting"]["upload_id"],
                      *(str(r["run_id"]) for r in other_rows),
                      *(str(r["message_id"]) for r in other_rows if r["message_id"])}
    their_photos = [normalised(theirs.photos["small"]), normalised(theirs.photos["large"]), theirs.photos["waiting"]]
    forbidden_bytes = [*their_photos, *(b64(p)[:60].encode() for p in their_photos)]
    for name in names:
        content = zf.read(name)
        for text in forbidden_text:
            assert text not in name and text.encode() not in content, (name, text)
        for data in forbidden_bytes:
            assert data not in content, name


def test_the_export_holds_everything_of_the_user_and_nothing_of_another(
        user, other_user, standin, db_conn, s3, bucket):
    mine = the_users_account(user, db_conn)
    theirs = another_users_account(other_user)

    body = exported(user)
    zf = download(body)
    names = set(zf.namelist())
    account = read_json(zf, "account.json")
    assert account["format"] == "agent-chat-export/1" and account["export_id"] == body["id"]
    assert "README.txt" in names and "sessions/" in zf.read("README.txt").decode()

    user_row = db_conn.execute("SELECT * FROM users WHERE sub = %s", (user.sub,)).fetchone()
    assert_the_account_and_its_usage(account, user, mine.sessions["gone"])
    assert_the_uploads(account, zf, mine)
    assert_the_sessions_hold_every_message_and_photo(zf, names, account, body, mine, user, db_conn, s3, bucket)
    assert_the_memories(zf, mine, user, db_conn)
    assert_nothing_of_the_other_user(zf, names, theirs, other_user, db_conn)
    assert str(user_row["id"]) not in json.dumps(account)  # internal ids stay inside


# --------------------------------------------------------------------------- the routes


def test_post_answers_ready_for_a_small_account_and_only_its_owner_sees_it(user, other_user, standin, db_conn):
    assert user.client.get("/me/export").status_code == 404  # nothing before the first export
    r = user.client.get("/me/export")
    assert r.headers["content-type"].startswith(PROBLEM) and r.json()["code"] == "no-export"
    completed(user, user.new_session(), message="hello")
    r = user.client.post("/me/export")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["url_expires_in"] == 900 and body["error"] is None
    assert body["contents"] == {"sessions": 1, "messages": 2, "photos": 0, "uploads": 0, "memories": 0,
                                "reminders": 0, "approvals": 0, "devices": 0, "documents": 0}
    row = db_conn.execute("SELECT * FROM exports WHERE id = %s", (body["id"],)).fetchone()
    assert row["expires_at"] - row["finished_at"] == timedelta(days=1) and row["key"] == f"media/exports/{body['id']}.zip"
    zf = download(body)
    assert sorted(zf.namelist())[0] == "README.txt" and len(read_json(zf, "account.json")["sessions"]) == 1
    # GET gives the same export with a fresh URL, which downloads the same zip
    again = user.client.get("/me/export").json()
    assert again["id"] == body["id"] and again["status"] == "ready"
    assert httpx.get(again["url"]).content == httpx.get(body["url"]).content
    # someone else sees no export at all, and theirs is their own
    r = other_user.client.get("/me/export")
    assert r.status_code == 404 and r.json()["code"] == "no-export"
    theirs = exported(other_user)
    assert theirs["id"] != body["id"] and theirs["contents"]["sessions"] == 0
    assert user.client.get("/me/export").json()["id"] == body["id"]


def test_an_account_with_nothing_stored_exports(user):
    body = exported(user)
    assert body["contents"] == {"sessions": 0, "messages": 0, "photos": 0, "uploads": 0, "memories": 0,
                                "reminders": 0, "approvals": 0, "devices": 0, "documents": 0}
    zf = download(body)
    assert sorted(zf.namelist()) == ["README.txt", "account.json", "actions.json", "devices.json", "memories.json"]
    assert read_json(zf, "memories.json") == {"format": "agent-chat-export/1", "memory": True, "memories": []}
    assert read_json(zf, "actions.json") == {"format": "agent-chat-export/1", "reminders": [], "approvals": []}
    account = read_json(zf, "account.json")
    assert account["sessions"] == [] and account["uploads"] == [] and account["deleted_sessions_usage"] == []
    assert account["usage"]["totals"]["turns"] == 0 and account["usage"]["by_day"] == []
    assert account["usage"]["totals"]["cost"] == {"usd": "0", "zar": "0"} and account["usage"]["budget"] is None
    assert account["account"] == {"sub": user.sub, "created_at": account["account"]["created_at"],
                                  "monthly_budget_zar": None}


@pytest.fixture()
def uploads_locked(stack):
    """Hold an exclusive lock on the uploads table (an export's job waits on it when it reads the
    account's uploads) until ``release()``; released after the test in any case."""
    conn = pg.connect(stack.env["DATABASE_URL"], row_factory=dict_row)
    conn.execute("LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE")

    class Lock:
        @staticmethod
        def release() -> None:
            if not conn.closed:
                conn.commit()
                conn.close()

    yield Lock
    Lock.release()


def wait_for_blocked_export(db_conn, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not db_conn.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                              "AND query LIKE %s", ("%FROM uploads%",)).fetchone():
        assert time.monotonic() < deadline, "the export's job never reached the uploads"
        time.sleep(0.05)


def test_a_second_post_while_it_is_built_answers_the_same_export(user, settings_env, uploads_locked, db_conn):
    settings_env.setenv("ACCOUNT_WAIT_SECONDS", "0.3")
    from chatcore.config import get_settings

    get_settings.cache_clear()
    first = user.client.post("/me/export")
    assert first.status_code == 202 and first.headers["location"] == "/me/export"
    assert first.json()["status"] == "building" and first.json()["url"] is None
    wait_for_blocked_export(db_conn)
    second = user.client.post("/me/export")
    assert second.status_code == 202 and second.json()["id"] == first.json()["id"]
    polled = user.client.get("/me/export")
    assert polled.status_code == 200 and polled.json()["id"] == first.json()["id"]
    assert polled.json()["status"] == "building"
    assert db_conn.execute("SELECT count(*) AS n FROM exports e JOIN users u ON u.id = e.user_id WHERE u.sub = %s",
                           (user.sub,)).fetchone()["n"] == 1
    uploads_locked.release()
    body = exported(user)
    assert body["id"] == first.json()["id"] and body["status"] == "ready"
    download(body)


@pytest.fixture()
def s3_stopped(stack, monkeypatch):
    """The process's S3 client pointed at a port nothing listens on (S3 down: connections refused);
    ``restore()`` brings S3 back; restored after the test in any case."""
    from chatcore.config import get_settings
    from chatcore.media import s3
    from local.ports import free_port

    real = stack.env["AWS_ENDPOINT_URL_S3"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    s3.forget_client()

    class Control:
        @staticmethod
        def restore() -> None:
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", real)
            get_settings.cache_clear()
            s3.forget_client()

    yield Control
    Control.restore()


def test_an_export_whose_upload_fails_is_failed_and_the_next_one_succeeds(user, s3_stopped, db_conn, s3, bucket):
    body = exported(user)
    assert body["status"] == "failed" and body["url"] is None and body["contents"] is None
    assert body["error"] == "EndpointConnectionError"  # the error's class (S3 refused the upload), no content
    row = db_conn.execute("SELECT status, key, finished_at FROM exports WHERE id = %s", (body["id"],)).fetchone()
    assert row["status"] == "failed" and row["key"] is None and row["finished_at"] is not None
    assert user.client.get("/me/export").json()["status"] == "failed"
    s3_stopped.restore()
    assert not exists(s3, bucket, f"media/exports/{body['id']}.zip")
    again = exported(user)
    assert again["id"] != body["id"] and again["status"] == "ready"
    download(again)


# --------------------------------------------------------------------------- the job and the schedule


def started_export(db_conn, user) -> uuid.UUID:
    """An export of ``user`` recorded as building, whose job the test runs itself."""
    from uuid6 import uuid7

    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    export_id = uuid7()
    db_conn.execute("INSERT INTO exports (id, user_id, status) VALUES (%s, %s, 'building')", (export_id, uid))
    return export_id


def test_an_export_whose_row_goes_while_it_is_built_leaves_no_zip(user, uploads_locked, db_conn, s3, bucket):
    """The export's row gone while it is built: the zip just uploaded is deleted again, and a job for
    an export that is gone or finished does nothing."""
    from chatcore.account import export

    user.new_session()
    export_id = started_export(db_conn, user)
    result: list[dict] = []
    job = threading.Thread(target=lambda: result.append(export.build_export(export_id)))
    job.start()
    wait_for_blocked_export(db_conn)
    db_conn.execute("DELETE FROM exports WHERE id = %s", (export_id,))
    uploads_locked.release()
    job.join(30)
    assert result == [{"status": "discarded", "reason": "the export is no longer being built"}]
    assert not exists(s3, bucket, f"media/exports/{export_id}.zip")
    assert export.build_export(export_id)["status"] == "skipped"  # gone
    done = exported(user)
    assert export.build_export(uuid.UUID(done["id"])) == {"status": "skipped", "reason": "already ready"}
    assert exists(s3, bucket, f"media/exports/{done['id']}.zip")


def test_an_account_whose_deletion_begins_while_its_export_is_built_gets_no_export(
        user, standin, uploads_locked, db_conn, s3, bucket):
    """DELETE /me detaches the account, then deletes its exports: an export being built meanwhile is
    never marked ready, its zip is deleted again, and the deletion leaves no export behind."""
    from chatcore import db
    from chatcore.account import deletion, export
    from chatcore.store import accounts

    completed(user, user.new_session(), message="hello")
    export_id = started_export(db_conn, user)
    result: list[dict] = []
    job = threading.Thread(target=lambda: result.append(export.build_export(export_id)))
    job.start()
    wait_for_blocked_export(db_conn)
    with db.connection() as conn:
        with conn.transaction():
            deletion_id = accounts.request_deletion(conn, user.sub)
    uploads_locked.release()
    job.join(30)
    assert result == [{"status": "discarded", "reason": "the export is no longer being built"}]
    assert not exists(s3, bucket, f"media/exports/{export_id}.zip")
    assert db_conn.execute("SELECT status FROM exports WHERE id = %s", (export_id,)).fetchone()["status"] == "building"
    assert deletion.run_deletion(deletion_id, wait_seconds=10).done
    assert db_conn.execute("SELECT count(*) AS n FROM exports WHERE id = %s", (export_id,)).fetchone()["n"] == 0
    assert user.client.get("/me/export").status_code == 404  # the same sub: a new, empty account


def test_prune_removes_expired_exports_fails_lost_ones_and_forgets_old_failures(user, db_conn, s3, bucket):
    from uuid6 import uuid7

    from chatcore.account import export

    body = exported(user)
    key = f"media/exports/{body['id']}.zip"
    assert exists(s3, bucket, key)
    db_conn.execute("UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = %s", (body["id"],))
    assert user.client.get("/me/export").status_code == 404  # expired: no longer offered
    uid = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    lost, old_failed, recent_failed = uuid7(), uuid7(), uuid7()
    db_conn.execute("INSERT INTO exports (id, user_id, status, requested_at) VALUES (%s, %s, 'building', %s)",
                    (lost, uid, "2020-01-01T00:00:00Z"))
    s3.put_object(Bucket=bucket, Key=f"media/exports/{lost}.zip", Body=b"a zip its job never recorded")
    db_conn.execute("INSERT INTO exports (id, user_id, status, error, requested_at, finished_at) VALUES "
                    "(%s, %s, 'failed', 'X', now() - interval '3 days', now() - interval '2 days'), "
                    "(%s, %s, 'failed', 'X', now() - interval '1 hour', now() - interval '1 hour')",
                    (old_failed, uid, recent_failed, uid))

    counts = export.prune_exports()
    assert counts["exports_expired"] >= 1 and counts["exports_lost"] >= 1 and counts["exports_failed_deleted"] >= 1
    rows = {r["id"]: r for r in db_conn.execute("SELECT id, status, error FROM exports WHERE user_id = %s",
                                                (uid,)).fetchall()}
    assert set(rows) == {lost, recent_failed}
    assert rows[lost]["status"] == "failed" and rows[lost]["error"]
    assert not exists(s3, bucket, key) and not exists(s3, bucket, f"media/exports/{lost}.zip")
    again = export.prune_exports()  # nothing left to do for this user
    assert db_conn.execute("SELECT count(*) AS n FROM exports WHERE user_id = %s", (uid,)).fetchone()["n"] == 2
    assert again["exports_lost"] == 0


def test_an_export_larger_than_the_function_s_storage_is_streamed_to_s3(user, standin, db_conn, s3, bucket, tmp_path):
    """Issue 29: photos totalling more than the account function's /tmp (simulated: the job runs in a
    process that may write no file over 4 MB, RLIMIT_FSIZE) export all the same: the zip goes to S3 as
    a multipart upload while it is built, with no copy of it on disk."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sid = user.new_session()
    completed(user, sid, message="hello")
    photos = {f"media/{sid}-{i:032x}.jpg": os.urandom(6 * 1024 * 1024) for i in range(3)}  # 18 MB
    for key, content in photos.items():
        s3.put_object(Bucket=bucket, Key=key, Body=content)
    export_id = started_export(db_conn, user)
    root = Path(__file__).resolve().parents[2]
    script = f"""
import json, os, resource, signal, uuid
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024 * 1024, 4 * 1024 * 1024))
try:
    with open(os.path.join({str(tmp_path)!r}, "probe"), "wb") as f:
        f.write(b"x" * (5 * 1024 * 1024))
    probe = "written"
except OSError:
    probe = "refused"
from chatcore.account import export
print(json.dumps({{"probe": probe, **export.build_export(uuid.UUID({str(export_id)!r}))}}))
"""
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(root), str(root / "layers" / "core")])}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["probe"] == "refused"  # the limit bites: a 5 MB file cannot be written
    assert summary["status"] == "ready" and summary["photos"] == 3 and summary["size"] > 18 * 1024 * 1024, summary
    body = user.client.get("/me/export").json()
    assert body["id"] == str(export_id)
    zf = download(body)
    files = {name: zf.read(name) for name in zf.namelist() if name.startswith(f"photos/{sid}/")}
    assert sorted(files.values()) == sorted(photos.values())
    assert read_json(zf, "account.json")["sessions"][0]["id"] == sid
