"""An export of everything stored about a user (POST and GET /me/export).

``start_export`` records an export (reusing one still being built, or a ready one made within
``EXPORT_COOLDOWN_SECONDS``); the account function builds it (``build_export``); ``latest_export`` is
what GET /me/export answers; the scheduled function calls ``prune_exports``.

The zip (``FORMAT``; README.txt in it says the same for the user):

- ``account.json``: the account (sub, created_at, monthly budget), its usage and costs over all time
  (the shape of GET /usage: totals, by_day, by_agent, the month's budget; the kept usage of deleted
  sessions included), the kept usage of each deleted session, the uploads, and an index of the sessions;
- ``sessions/<session_id>.json``: a session (agent or team, title, times, turns, cost, its summary),
  every run of it (turns and team members' runs: status, error, tokens, cost) and every message as
  the app renders it (``chatcore.web.messages``), an image naming its file in the zip;
- ``photos/<session_id>/<name>``: the session's photos (its S3 objects, inline ones from their row);
- ``uploads/<upload_id><ext>``: a photo sent to POST /uploads that no turn has used yet.

Built in a temporary directory, never in memory: sessions, runs, messages and uploads are read in
pages over short pooled connections, each JSON document is written piece by piece to a scratch
file, photos are streamed one at a time, and the zip goes to S3 with boto3's managed upload. No S3
call is made while a connection is held.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from uuid6 import uuid7

from chatcore import db
from chatcore.config import get_settings
from chatcore.media import s3
from chatcore.store import sessions

log = logging.getLogger(__name__)

# An export being built for longer than this is taken as lost (its job died): a new one is started.
BUILDING_SECONDS = 15 * 60

EXPORT_COLUMNS = "e.id, e.status, e.key, e.size, e.contents, e.error, e.requested_at, e.finished_at, e.expires_at"

# The export a new request is answered with: one being built, else a ready one made within the
# cooldown (and not expired).
CURRENT_EXPORT = f"""
SELECT {EXPORT_COLUMNS} FROM exports e
WHERE e.user_id = %(user_id)s
  AND ((e.status = 'building' AND e.requested_at > now() - make_interval(secs => %(building_seconds)s))
       OR (e.status = 'ready' AND e.finished_at > now() - make_interval(secs => %(cooldown_seconds)s)
           AND (e.expires_at IS NULL OR e.expires_at > now())))
ORDER BY e.status = 'building' DESC, e.requested_at DESC LIMIT 1
"""

INSERT_EXPORT = f"""
INSERT INTO exports AS e (id, user_id, status) VALUES (%(id)s, %(user_id)s, 'building')
RETURNING {EXPORT_COLUMNS}
"""

GET_EXPORT = f"""
SELECT {EXPORT_COLUMNS} FROM exports e JOIN users u ON u.id = e.user_id
WHERE u.sub = %(sub)s AND e.id = %(id)s
"""

# The caller's latest export that still exists (a ready one until it expires).
LATEST_EXPORT = f"""
SELECT {EXPORT_COLUMNS} FROM exports e JOIN users u ON u.id = e.user_id
WHERE u.sub = %(sub)s AND (e.expires_at IS NULL OR e.expires_at > now())
ORDER BY e.requested_at DESC LIMIT 1
"""


def start_export(conn: psycopg.Connection, sub: str) -> tuple[dict[str, Any], bool]:
    """In the caller's transaction: the caller's export being built, else a ready one made less than
    EXPORT_COOLDOWN_SECONDS ago, else a new one; and whether it is new (then its job must be started)."""
    user_id = sessions.ensure_user(conn, sub)
    row = conn.execute(CURRENT_EXPORT, {"user_id": user_id, "building_seconds": BUILDING_SECONDS,
                                        "cooldown_seconds": get_settings().export_cooldown_seconds}).fetchone()
    if row is not None:
        return row, False
    return conn.execute(INSERT_EXPORT, {"id": uuid7(), "user_id": user_id}).fetchone(), True


def get_export(conn: psycopg.Connection, sub: str, export_id: UUID) -> dict[str, Any] | None:
    return conn.execute(GET_EXPORT, {"sub": sub, "id": export_id}).fetchone()


def latest_export(conn: psycopg.Connection, sub: str) -> dict[str, Any] | None:
    return conn.execute(LATEST_EXPORT, {"sub": sub}).fetchone()


# ---- building an export (the account function's job)

FORMAT = "agent-chat-export/1"

# Rows read per round trip.
SESSIONS_PAGE = 100
RUNS_PAGE = 1000
MESSAGES_PAGE = 500
ROWS_PAGE = 1000
# How photos are copied from S3 into the zip.
CHUNK_BYTES = 1024 * 1024

# The export (by id: this is the job, acting for no caller) and its owner.
EXPORT_JOB = """
SELECT e.id, e.user_id, e.status, u.sub, u.created_at AS user_created_at, u.monthly_budget_zar,
       EXISTS (SELECT 1 FROM account_deletions d WHERE d.user_id = e.user_id) AS deleting
FROM exports e JOIN users u ON u.id = e.user_id
WHERE e.id = %(id)s
"""

EXPORT_STATE = "SELECT status, key FROM exports WHERE id = %(id)s"

# Every statement below is scoped by the owner's id: nothing of anyone else is read.
ACCOUNT_SESSIONS = """
SELECT s.id, a.name AS agent, t.name AS team, s.title, s.created_at, s.updated_at,
       tr.turns, tr.cost_usd, tr.cost_in_rands,
       ss.summary, ss.turns AS summary_turns, ss.through_message_id AS summary_through_message_id,
       ss.updated_at AS summary_updated_at
FROM sessions s
LEFT JOIN agents a ON a.id = s.agent_id
LEFT JOIN teams t ON t.id = s.team_id
LEFT JOIN session_summaries ss ON ss.session_id = s.id
LEFT JOIN LATERAL (
    SELECT count(*) AS turns, coalesce(sum(r.cost_usd), 0) AS cost_usd,
           coalesce(sum(r.cost_in_rands), 0) AS cost_in_rands
    FROM runs r WHERE r.session_id = s.id AND r.parent_run_id IS NULL
) tr ON true
WHERE s.user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR s.id > %(after)s)
ORDER BY s.id
LIMIT %(limit)s
"""

# A session's runs: its turns, their team members' runs and the summaries' (compaction) runs.
SESSION_RUNS = """
SELECT r.id, r.parent_run_id, r.agent_name, r.status, r.client_turn_id, r.error_code, r.error_message,
       r.client_disconnected, r.cancel_requested_at, r.input_tokens, r.output_tokens, r.cache_read_tokens,
       r.cache_write_tokens, r.cost_usd, r.cost_in_rands, r.started_at, r.finished_at
FROM runs r JOIN sessions s ON s.id = r.session_id
WHERE r.session_id = %(session_id)s AND s.user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR r.id > %(after)s)
ORDER BY r.id
LIMIT %(limit)s
"""

ACCOUNT_UPLOADS = """
SELECT id, key, mime_type, size, created_at, expires_at, consumed_at, consumed_run_id
FROM uploads
WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id
LIMIT %(limit)s
"""

DELETED_SESSIONS_USAGE = """
SELECT id, session_id, deleted_at, day, kind, name, model_id, input_tokens, output_tokens, cache_read_tokens,
       cache_write_tokens, cost_usd, cost_in_rands, turns, failed_turns
FROM deleted_session_usage
WHERE user_id = %(user_id)s AND (%(after)s::uuid IS NULL OR id > %(after)s)
ORDER BY id
LIMIT %(limit)s
"""

# Ready only while still building, and never once the account's deletion has begun (it detaches
# the account from its sub and then deletes its exports).
MARK_READY = """
UPDATE exports e SET status = 'ready', key = %(key)s, size = %(size)s, contents = %(contents)s, error = NULL,
       finished_at = now(), expires_at = now() + make_interval(secs => %(ttl)s)
WHERE e.id = %(id)s AND e.status = 'building'
  AND NOT EXISTS (SELECT 1 FROM account_deletions d WHERE d.user_id = e.user_id)
RETURNING e.id
"""

MARK_FAILED = """
UPDATE exports SET status = 'failed', error = %(error)s, finished_at = now()
WHERE id = %(id)s AND status = 'building'
"""

README = """\
Your agent chat data
====================

This archive holds everything the agent chat app stores about your account.

    exported    {exported_at}
    export      {export_id}
    format      {format}
    contents    {sessions} session(s), {messages} message(s), {photos} photo(s), {uploads} upload(s)

JSON files are UTF-8. Times are ISO 8601, in UTC. Amounts of money are decimal strings
("0.0050898000"): usd in US dollars, zar in South African rand.

account.json
    account                 your account: sub (your sign-in identity), created_at, monthly_budget_zar
    usage                   tokens and cost over all time: totals, by_day (UTC days), by_agent (per
                            agent or team), and budget (this month's spend against your monthly
                            budget, if you set one). Sessions you deleted still count here.
    deleted_sessions_usage  what each session you deleted cost, per day, agent or team and model
                            (the only thing kept of a deleted session: no content)
    uploads                 photos you sent to the upload route: type, size, when sent, when they
                            expire and when a turn used them; "file" names the photo in uploads/ when
                            no turn used it yet (a used photo is in the session's photos/)
    sessions                one entry per session, with "file" naming its document in sessions/

sessions/<session id>.json
    session     agent or team, title, created_at, updated_at, turns, cost, and summary (the summary
                of older turns the model reads instead of them, when the session has one)
    runs        every run: each turn you sent, each run of a team member (parent_run_id is the
                team's turn) and each run that wrote the summary (agent_name "compaction"), with
                status, error, tokens and cost
    messages    every message as the app shows it: role (user, assistant, tool), text, tool calls
                and results, who spoke (agent_name; member is true for a team member), tokens and
                cost of its model call, and images; an image's "file" is its path in this archive
                (null if the photo could not be found)

photos/<session id>/<name>
    the photos of each session, as stored (normalised when they arrived: upright, no metadata)

uploads/<upload id>.<ext>
    photos sent to the upload route that no turn used (yet), as sent

Not in it: the copy of each answer's stream that is kept for a day so that a dropped connection
can resume it (it repeats the messages), and this archive's own record.
"""


class _Counts:
    def __init__(self) -> None:
        self.sessions = self.messages = self.photos = self.uploads = 0

    def as_dict(self) -> dict[str, int]:
        return {"sessions": self.sessions, "messages": self.messages, "photos": self.photos, "uploads": self.uploads}


def build_export(export_id: UUID) -> dict[str, Any]:
    """Build the export's zip and store it in S3; a summary for the log.

    Does nothing when the export is gone or no longer ``building`` (another run finished it), or its
    account is being deleted. Marks it ``ready`` in one statement, only while it is still
    ``building`` and no deletion of its account has begun; when that updates nothing, the zip just
    uploaded is deleted again (unless another run made the export ready with it). On failure the
    export is marked ``failed`` (the error's class, no content), what may have been uploaded is
    deleted, and the error is raised again."""
    with db.connection() as conn:
        job = conn.execute(EXPORT_JOB, {"id": export_id}).fetchone()
    if job is None:
        return {"status": "skipped", "reason": "no such export"}
    if job["status"] != "building":
        return {"status": "skipped", "reason": f"already {job['status']}"}
    if job["deleting"]:
        return {"status": "skipped", "reason": "the account is being deleted"}

    key = s3.export_key(export_id)
    uploaded = False
    try:
        with tempfile.TemporaryDirectory(prefix="export-") as scratch:
            path = os.path.join(scratch, "export.zip")
            counts = _write_zip(path, scratch, job)
            size = os.path.getsize(path)
            uploaded = True  # from here on an object may exist, even if the upload fails
            _upload(path, key)
        with db.connection() as conn:
            done = conn.execute(MARK_READY, {
                "id": export_id, "key": key, "size": size, "contents": Jsonb(counts.as_dict()),
                "ttl": get_settings().export_ttl_seconds}).fetchone() is not None
            state = None if done else conn.execute(EXPORT_STATE, {"id": export_id}).fetchone()
    except BaseException as e:
        _failed(export_id, key, e, uploaded)
        raise
    if not done:
        if state is not None and state["status"] == "ready" and state["key"] == key:
            return {"status": "skipped", "reason": "another run finished it"}
        s3.delete_keys([key])  # the account is being deleted, or the export is gone or failed, meanwhile
        return {"status": "discarded", "reason": "the export is no longer being built"}
    log.info("export ready", extra={"export_id": str(export_id), "size": size, **counts.as_dict()})
    return {"status": "ready", "size": size, **counts.as_dict()}


def _failed(export_id: UUID, key: str, error: BaseException, uploaded: bool) -> None:
    """Mark the export failed and delete what may have been uploaded (best effort: the error that
    brought us here is the one raised)."""
    state = None
    try:
        with db.connection() as conn:
            conn.execute(MARK_FAILED, {"id": export_id, "error": error.__class__.__name__[:200]})
            state = conn.execute(EXPORT_STATE, {"id": export_id}).fetchone()
    except Exception:  # noqa: BLE001 - the database may be what failed; the schedule fails it later
        log.warning("could not mark the export %s failed", export_id, exc_info=True)
    if uploaded and not (state is not None and state["status"] == "ready" and state["key"] == key):
        try:
            s3.delete_keys([key])
        except Exception:  # noqa: BLE001 - the bucket's lifecycle rule removes it after a day
            log.warning("could not delete the partial export %s", key, exc_info=True)
    log.warning("export %s failed (%s)", export_id, error.__class__.__name__)


def _upload(path: str, key: str) -> None:
    """boto3's managed upload (multipart above its threshold) of the zip, as a download."""
    from boto3.s3.transfer import TransferConfig

    filename = f"chat-export-{datetime.now(UTC).date().isoformat()}.zip"
    s3.client().upload_file(
        path, get_settings().media_bucket, key,
        ExtraArgs={"ContentType": "application/zip", "ContentDisposition": f'attachment; filename="{filename}"'},
        Config=TransferConfig(max_concurrency=4))


def _write_zip(path: str, scratch: str, job: dict[str, Any]) -> _Counts:
    counts = _Counts()
    exported_at = datetime.now(UTC)
    user_id = job["user_id"]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        account_path = os.path.join(scratch, "account.json")
        with open(account_path, "w", encoding="utf-8") as doc:
            doc.write("{\n")
            _member(doc, "format", FORMAT)
            _member(doc, "export_id", job["id"])
            _member(doc, "exported_at", exported_at)
            _member(doc, "account", {"sub": job["sub"], "created_at": job["user_created_at"],
                                     "monthly_budget_zar": job["monthly_budget_zar"]})
            _member(doc, "usage", _usage(job, exported_at))
            _array(doc, "deleted_sessions_usage", (_deleted_usage(r) for r in _pages(DELETED_SESSIONS_USAGE, user_id)))
            counts.uploads = _array(doc, "uploads", (_upload_entry(zf, r) for r in _pages(ACCOUNT_UPLOADS, user_id)))
            counts.sessions = _array(doc, "sessions", (_write_session(zf, scratch, user_id, r, counts)
                                                       for r in _pages(ACCOUNT_SESSIONS, user_id, page=SESSIONS_PAGE)),
                                     last=True)
            doc.write("}\n")
        zf.write(account_path, "account.json")
        os.remove(account_path)
        zf.writestr("README.txt", README.format(exported_at=exported_at.strftime("%Y-%m-%d %H:%M UTC"),
                                                export_id=job["id"], format=FORMAT, **counts.as_dict()))
    return counts


# ---- the parts of the zip

def _usage(job: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The account's usage over all time, in the shape of GET /usage (``chatcore.store.usage``, the
    one definition of a user's usage: deleted sessions' kept usage included)."""
    from chatcore import cli
    from chatcore.money.budgets import budget_status
    from chatcore.store import usage

    today = now.date()
    with db.connection() as conn:
        found = usage.user_usage(conn, job["sub"], cli.day_start(date(1970, 1, 1)),
                                 cli.day_start(today + timedelta(days=1)))
        budget = budget_status(conn, job["user_id"])
    by_day, by_agent, turns = found["by_day"], found["by_agent"], found["turns"]
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    first = min([job["user_created_at"].astimezone(UTC).date(), *(r["day"] for r in by_day)])

    def row(r: dict) -> dict[str, Any]:
        return {**{k: int(r[k] or 0) for k in tokens},
                "cost": _money(r["cost_usd"] or Decimal(0), r["cost_in_rands"] or Decimal(0))}

    return {
        "from": first, "to": today,
        "totals": {**{k: sum(int(r[k] or 0) for r in by_day) for k in tokens},
                   "cost": _money(sum((r["cost_usd"] for r in by_day), Decimal(0)),
                                  sum((r["cost_in_rands"] for r in by_day), Decimal(0))),
                   "turns": turns["turns"], "failed_turns": turns["failed_turns"]},
        "by_day": [{"day": r["day"], **row(r)} for r in by_day],
        "by_agent": [{"kind": r["kind"], "name": r["name"], **row(r)} for r in by_agent],
        "budget": budget,
    }


def _deleted_usage(r: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": r["session_id"], "deleted_at": r["deleted_at"], "day": r["day"], "kind": r["kind"],
            "name": r["name"], "model_id": r["model_id"], **_tokens(r),
            "cost": _money(r["cost_usd"], r["cost_in_rands"]), "turns": r["turns"], "failed_turns": r["failed_turns"]}


def _upload_entry(zf: zipfile.ZipFile, r: dict[str, Any]) -> dict[str, Any]:
    """An upload's row; its photo, when no turn used it (then the original is still in S3)."""
    file = None
    if r["consumed_at"] is None and s3.exists(r["key"]):
        file = f"uploads/{r['id']}{_extension(r['mime_type'])}"
        if not _copy_object(zf, r["key"], file):
            file = None  # used and deleted meanwhile
    return {"id": r["id"], "mime_type": r["mime_type"], "size": r["size"], "created_at": r["created_at"],
            "expires_at": r["expires_at"], "consumed_at": r["consumed_at"], "consumed_run_id": r["consumed_run_id"],
            "file": file}


def _write_session(zf: zipfile.ZipFile, scratch: str, user_id: UUID, row: dict[str, Any],
                   counts: _Counts) -> dict[str, Any]:
    """Write a session's photos into the zip and its document (through a scratch file); its entry in
    account.json."""
    from chatcore.web import messages

    session_id = row["id"]
    prefix = s3.session_prefix(session_id)
    stored = set(s3.list_keys(prefix))  # the session's objects: referenced ones and any other
    files: dict[str, str] = {}  # key -> its file in the zip, each object written once

    def file_of(image: messages.StoredImage) -> str | None:
        if image.key in files:
            return files[image.key]
        name = _photo_name(session_id, image.key[len(prefix):])
        if image.content is not None:  # kept in the row: no S3 call
            zf.writestr(_info(name, compress=False), image.content)
        elif image.key not in stored or not _copy_object(zf, image.key, name):
            return None  # referenced, but not (or no longer) in S3
        files[image.key] = name
        return name

    session = {
        "id": session_id, "agent": row["agent"], "team": row["team"], "title": row["title"],
        "created_at": row["created_at"], "updated_at": row["updated_at"], "turns": row["turns"],
        "cost": _money(row["cost_usd"], row["cost_in_rands"]),
        "summary": None if row["summary"] is None else {
            "text": row["summary"], "turns": row["summary_turns"],
            "through_message_id": row["summary_through_message_id"], "updated_at": row["summary_updated_at"]},
    }
    n_messages = 0

    def rendered() -> Iterator[dict[str, Any]]:
        nonlocal n_messages
        for message in _messages(session_id):
            n_messages += 1
            yield messages.exported_message(message, session_id, file_of)

    doc_path = os.path.join(scratch, "session.json")
    with open(doc_path, "w", encoding="utf-8") as doc:
        doc.write("{\n")
        _member(doc, "format", FORMAT)
        _member(doc, "session", session)
        _array(doc, "runs", (_run(r) for r in _pages(SESSION_RUNS, user_id, page=RUNS_PAGE, session_id=session_id)))
        _array(doc, "messages", rendered(), last=True)
        doc.write("}\n")
    file = f"sessions/{session_id}.json"
    zf.write(doc_path, file)
    os.remove(doc_path)
    for key in sorted(stored - set(files)):  # photos no message names (a turn cut before it was stored)
        name = _photo_name(session_id, key[len(prefix):])
        if _copy_object(zf, key, name):
            files[key] = name
    counts.messages += n_messages
    counts.photos += len(files)
    return {"id": session_id, "agent": row["agent"], "team": row["team"], "title": row["title"],
            "created_at": row["created_at"], "updated_at": row["updated_at"], "file": file,
            "messages": n_messages, "photos": sorted(files.values())}


def _run(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "parent_run_id": r["parent_run_id"], "agent_name": r["agent_name"], "status": r["status"],
            "client_turn_id": r["client_turn_id"], "error_code": r["error_code"], "error_message": r["error_message"],
            "client_disconnected": r["client_disconnected"], "cancel_requested_at": r["cancel_requested_at"],
            "started_at": r["started_at"], "finished_at": r["finished_at"], "usage": _tokens(r),
            "cost": _money(r["cost_usd"], r["cost_in_rands"])}


def _messages(session_id: UUID) -> Iterator[dict[str, Any]]:
    """The session's messages as the app lists them (members' included), oldest first, in pages;
    no connection is held while the caller works on a page."""
    after = None
    while True:
        with db.connection() as conn:
            rows = sessions.list_messages(conn, session_id, after=after, members=True, limit=MESSAGES_PAGE)
        yield from rows
        if len(rows) < MESSAGES_PAGE:
            return
        after = rows[-1]["id"]


def _pages(sql: str, user_id: UUID, *, page: int = ROWS_PAGE, **params: Any) -> Iterator[dict[str, Any]]:
    """The rows of ``sql`` (ordered by ``id``, keyset-paged by ``after``), a page per connection."""
    after = None
    while True:
        with db.connection() as conn:
            rows = conn.execute(sql, {"user_id": user_id, "after": after, "limit": page, **params}).fetchall()
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1]["id"]


# ---- S3 and the zip

def _copy_object(zf: zipfile.ZipFile, key: str, name: str) -> bool:
    """Stream an S3 object into the zip as ``name``, a chunk at a time (photos are compressed already:
    stored as they are); False when the object is gone (deleted since it was listed)."""
    from botocore.exceptions import ClientError

    try:
        body = s3.client().get_object(Bucket=get_settings().media_bucket, Key=key)["Body"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return False
        raise
    try:
        with zf.open(_info(name, compress=False), "w") as out:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                out.write(chunk)
    finally:
        body.close()
    return True


def _info(name: str, *, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _photo_name(session_id: UUID, name: str) -> str:
    safe = name.replace("/", "_").replace("\\", "_").lstrip(".") or "photo"
    return f"photos/{session_id}/{safe}"


def _extension(mime_type: str) -> str:
    import mimetypes

    return mimetypes.guess_extension(mime_type) or ""


# ---- JSON, written piece by piece

def _json(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        from chatcore.money.amounts import decimal_string

        return decimal_string(value)
    from pydantic_core import to_jsonable_python  # datetimes, dates and UUIDs written as the API writes them

    return to_jsonable_python(value)


def _member(doc: IO[str], name: str, value: Any) -> None:
    doc.write(f"{_json(name)}: {_json(value)},\n")


def _array(doc: IO[str], name: str, items: Iterator[Any], *, last: bool = False) -> int:
    """Write the member ``name`` as an array of ``items`` (one a line); how many there were."""
    doc.write(f"{_json(name)}: [")
    n = 0
    for item in items:
        doc.write(("," if n else "") + "\n" + _json(item))
        n += 1
    doc.write(("\n]" if n else "]") + ("\n" if last else ",\n"))
    return n


def _money(usd: Decimal, zar: Decimal) -> dict[str, Decimal]:
    return {"usd": usd, "zar": zar}


def _tokens(r: dict[str, Any]) -> dict[str, int]:
    return {k: int(r[k] or 0) for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}


# ---- the schedule

EXPIRED_EXPORTS = """
SELECT id, key FROM exports WHERE status = 'ready' AND expires_at <= now() ORDER BY expires_at LIMIT %(limit)s
"""
DELETE_EXPIRED = "DELETE FROM exports WHERE id = ANY(%(ids)s) AND status = 'ready' AND expires_at <= now()"

FAIL_LOST = """
UPDATE exports SET status = 'failed', error = 'lost (its job stopped)', finished_at = now()
WHERE status = 'building' AND requested_at < now() - make_interval(secs => %(building_seconds)s)
RETURNING id
"""

OLD_FAILED = """
SELECT id, key FROM exports
WHERE status = 'failed' AND coalesce(finished_at, requested_at) < now() - interval '1 day'
ORDER BY id LIMIT %(limit)s
"""
DELETE_FAILED = "DELETE FROM exports WHERE id = ANY(%(ids)s) AND status = 'failed'"

PRUNE_BATCH = 500


def prune_exports() -> dict[str, int]:
    """The scheduled clean-up: ready exports past ``expires_at`` are deleted (their zip first, then
    the row); exports ``building`` for longer than ``BUILDING_SECONDS`` are marked failed (their job
    died); failed ones older than a day are deleted. Counts of each. Raises when S3 fails to delete
    an expired or failed export's zip (its row then stays, for the next run)."""
    with db.connection() as conn:
        lost = [r["id"] for r in conn.execute(FAIL_LOST, {"building_seconds": BUILDING_SECONDS}).fetchall()]
    if lost:  # a job that died after its upload may have left a zip no row names as ready
        try:
            s3.delete_keys([s3.export_key(i) for i in lost])
        except Exception:  # noqa: BLE001 - the bucket's lifecycle rule removes it after a day
            log.warning("could not delete the zips of %d lost export(s)", len(lost), exc_info=True)
    expired = _prune(EXPIRED_EXPORTS, DELETE_EXPIRED)
    failed = _prune(OLD_FAILED, DELETE_FAILED)
    return {"exports_expired": expired, "exports_lost": len(lost), "exports_failed_deleted": failed}


def _prune(select: str, delete: str) -> int:
    deleted = 0
    while True:
        with db.connection() as conn:
            rows = conn.execute(select, {"limit": PRUNE_BATCH}).fetchall()
        if not rows:
            return deleted
        s3.delete_keys([r["key"] or s3.export_key(r["id"]) for r in rows])  # objects first, then the rows
        with db.connection() as conn:
            deleted += conn.execute(delete, {"ids": [r["id"] for r in rows]}).rowcount
        if len(rows) < PRUNE_BATCH:
            return deleted
