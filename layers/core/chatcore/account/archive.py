"""The export's zip (``FORMAT``; its README.txt says the same for the user):

- ``account.json``: the account (sub, created_at, monthly budget), its usage and costs over all time
  (the shape of GET /usage, ``chatcore.money.spending``: totals, by_day, by_agent, the month's budget, the plan and its limits at export time;
  the kept usage of deleted sessions included), the kept usage of each deleted session, the uploads,
  and an index of the sessions;
- ``sessions/<session_id>.json``: a session (agent or team, title, times, turns, cost, its summary),
  every run of it (turns and team members' runs: status, error, tokens, cost) and every message as
  the app renders it (``chatcore.wire.messages``), an image naming its file in the zip;
- ``memories.json``: what the assistant remembers about the user (every memory, oldest first, with
  the session and run that wrote it) and the user's memory switch;
- ``photos/<session_id>/<name>``: the session's photos (its S3 objects, inline ones from their row);
- ``documents/<session_id>/<name>``: the session's PDFs, as sent;
- ``uploads/<upload_id><ext>``: a photo sent to POST /uploads that no turn has used yet.

Written to a stream (S3 as it is written, ``chatcore.account.export``) or a file, never whole in memory: the account's rows are read in pages over
short pooled connections (``chatcore.store.exports``), each JSON document is written piece by piece
to a scratch file, and photos are streamed from S3 one at a time. No S3 call is made while a
connection is held.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

from chatcore import db
from chatcore.config import get_settings
from chatcore.media import keys, s3
from chatcore.money.spending import cost, token_counts, usage_statement
from chatcore.store import approvals, devices as device_rows, exports, sessions

FORMAT = "agent-chat-export/1"

# Rows read per round trip.
SESSIONS_PAGE = 100
RUNS_PAGE = 1000
MESSAGES_PAGE = 500
ROWS_PAGE = 1000
# How photos are copied from S3 into the zip.
CHUNK_BYTES = 1024 * 1024

README = """\
Your agent chat data
====================

This archive holds everything the agent chat app stores about your account.

    exported    {exported_at}
    export      {export_id}
    format      {format}
    contents    {sessions} session(s), {messages} message(s), {photos} photo(s), {documents} document(s), {uploads} upload(s),
                {memories} memory(ies), {reminders} reminder(s), {approvals} approval(s), {devices} device(s)

JSON files are UTF-8. Times are ISO 8601, in UTC. Amounts of money are decimal strings
("0.0050898000"): usd in US dollars, zar in South African rand.

account.json
    account                 your account: sub (your sign-in identity), created_at, monthly_budget_zar
    usage                   tokens and cost over all time: totals, by_day (UTC days), by_agent (per
                            agent or team), budget (this month's spend against your monthly
                            budget, if you set one, and its 80 % / 100 % warnings), and plan (your
                            plan at export time: its budget, what it allows, its limits and what
                            was left of each). Sessions you deleted still count here.
    deleted_sessions_usage  what each session you deleted cost, per day, agent or team and model
                            (the only thing kept of a deleted session: no content)
    uploads                 photos you sent to the upload route: type, size, when sent, when they
                            expire and when a turn used them; "file" names the photo in uploads/ when
                            no turn used it yet (a used photo is in the session's photos/)
    sessions                one entry per session, with "file" naming its document in sessions/

memories.json
    memory      whether the assistant remembers you across sessions (your memory setting)
    memories    what it remembers about you, oldest first: text, created_at, updated_at, and the
                session and run that wrote it (null once that session was deleted; a run whose
                agent_name is "memory" merged older memories into this one)

actions.json
    reminders   the reminders the assistant set for you (each one you approved): text, due_at, time_zone,
                and the session and run that set it (null once that session was deleted)
    approvals   every action an assistant asked you to approve: the tool, its arguments, the summary you
                were shown, and your decision (status pending, approved, declined, expired or cancelled;
                note, decided_at), with the session and run that asked

devices.json
    push_preview  whether push notifications preview the answer on the lock screen (your setting)
    devices       the phones registered for push notifications: platform, token, app_version, locale,
                  created_at, updated_at
    pushes        the notifications sent to them: kind (turn_finished, approval_needed, budget), key (the
                  run, the run and its pause, or the month and the budget threshold), how many devices
                  it reached, when (no text: what a notification said is not kept)

sessions/<session id>.json
    session     agent or team, title, created_at, updated_at, turns, cost, and summary (the summary
                of older turns the model reads instead of them, when the session has one)
    runs        every run: each turn you sent, each run of a team member (parent_run_id is the
                team's turn), each run that wrote the summary (agent_name "compaction") and each
                that consolidated your memories (agent_name "memory"), with status, error, tokens
                and cost
    messages    every message as the app shows it: role (user, assistant, tool), text, tool calls
                and results, who spoke (agent_name; member is true for a team member), tokens and
                cost of its model call, images and documents (PDFs: name, pages, size); an image's
                or a document's "file" is its path in this archive (null if it could not be found)

photos/<session id>/<name>
    the photos of each session, as stored (normalised when they arrived: upright, no metadata)

documents/<session id>/<name>.pdf
    the PDF documents of each session, as sent

uploads/<upload id>.<ext>
    photos sent to the upload route that no turn used (yet), as sent

Not in it: the copy of each answer's stream that is kept for a day so that a dropped connection
can resume it (it repeats the messages), and this archive's own record.
"""


class _Counts:
    def __init__(self) -> None:
        self.sessions = self.messages = self.photos = self.uploads = self.memories = 0
        self.reminders = self.approvals = self.devices = self.documents = 0

    def as_dict(self) -> dict[str, int]:
        return {"sessions": self.sessions, "messages": self.messages, "photos": self.photos, "uploads": self.uploads,
                "memories": self.memories, "reminders": self.reminders, "approvals": self.approvals, "devices": self.devices,
                "documents": self.documents}


def write_archive(target: str | IO[bytes], scratch: str, job: dict[str, Any]) -> _Counts:
    """Write the zip to ``target`` (a path, or a write-only stream: ``media.s3.MultipartWriter``)."""
    counts = _Counts()
    exported_at = datetime.now(UTC)
    user_id = job["user_id"]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        account_path = os.path.join(scratch, "account.json")
        with open(account_path, "w", encoding="utf-8") as doc:
            doc.write("{\n")
            _member(doc, "format", FORMAT)
            _member(doc, "export_id", job["id"])
            _member(doc, "exported_at", exported_at)
            _member(doc, "account", {"sub": job["sub"], "created_at": job["user_created_at"],
                                     "monthly_budget_zar": job["monthly_budget_zar"]})
            _member(doc, "usage", _usage(job, exported_at))
            _array(doc, "deleted_sessions_usage", (_deleted_usage(r) for r in _pages("deleted_sessions_usage", user_id)))
            counts.uploads = _array(doc, "uploads", (_upload_entry(zf, r) for r in _pages("uploads", user_id)))
            counts.sessions = _array(doc, "sessions", (_write_session(zf, scratch, user_id, r, counts)
                                                       for r in _pages("sessions", user_id, page=SESSIONS_PAGE)),
                                     last=True)
            doc.write("}\n")
        zf.write(account_path, "account.json")
        os.remove(account_path)
        counts.memories = _write_memories(zf, scratch, job)
        counts.reminders, counts.approvals = _write_actions(zf, scratch, job)
        counts.devices = _write_devices(zf, scratch, job)
        zf.writestr("README.txt", README.format(exported_at=exported_at.strftime("%Y-%m-%d %H:%M UTC"),
                                                export_id=job["id"], format=FORMAT, **counts.as_dict()))
    return counts


# ---- the parts of the zip

def _usage(job: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The account's usage over all time (``chatcore.money.spending``), from its first day."""
    with db.connection() as conn:
        statement = usage_statement(conn, job["sub"], date(1970, 1, 1), now.date(), user_id=job["user_id"])
    days = [date.fromisoformat(r["day"]) for r in statement["by_day"]]
    return {**statement, "from": min([job["user_created_at"].astimezone(UTC).date(), *days]).isoformat()}


def _deleted_usage(r: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": r["session_id"], "deleted_at": r["deleted_at"], "day": r["day"], "kind": r["kind"],
            "name": r["name"], "model_id": r["model_id"], **token_counts(r),
            "cost": cost(r["cost_usd"], r["cost_in_rands"]), "turns": r["turns"], "failed_turns": r["failed_turns"]}


def _write_memories(zf: zipfile.ZipFile, scratch: str, job: dict[str, Any]) -> int:
    """memories.json: the user's memory switch and every memory; how many there are."""
    path = os.path.join(scratch, "memories.json")
    with open(path, "w", encoding="utf-8") as doc:
        doc.write("{\n")
        _member(doc, "format", FORMAT)
        _member(doc, "memory", job["memory_enabled"])
        n = _array(doc, "memories", ({"id": r["id"], "text": r["text"], "session_id": r["session_id"],
                                      "run_id": r["run_id"], "created_at": r["created_at"],
                                      "updated_at": r["updated_at"]} for r in _pages("memories", job["user_id"])),
                   last=True)
        doc.write("}\n")
    zf.write(path, "memories.json")
    os.remove(path)
    return n


def _write_actions(zf: zipfile.ZipFile, scratch: str, job: dict[str, Any]) -> tuple[int, int]:
    """actions.json: the reminders set for the user and every approval asked of them, pending and
    decided; how many of each."""
    path = os.path.join(scratch, "actions.json")
    with db.connection() as conn:
        asked = approvals.of_user(conn, job["user_id"])
    with open(path, "w", encoding="utf-8") as doc:
        doc.write("{\n")
        _member(doc, "format", FORMAT)
        n = _array(doc, "reminders", ({k: r[k] for k in ("id", "text", "due_at", "time_zone", "session_id", "run_id",
                                                         "created_at")} for r in _pages("reminders", job["user_id"])))
        m = _array(doc, "approvals", iter(asked), last=True)
        doc.write("}\n")
    zf.write(path, "actions.json")
    os.remove(path)
    return n, m


def _write_devices(zf: zipfile.ZipFile, scratch: str, job: dict[str, Any]) -> int:
    """devices.json: the push setting, the phones registered for pushes and the pushes sent; how many devices."""
    path = os.path.join(scratch, "devices.json")
    with db.connection() as conn:
        phones = device_rows.devices_of_user(conn, job["user_id"])
        sent = device_rows.pushes_of_user(conn, job["user_id"])
        preview = device_rows.preview_of_user(conn, job["user_id"])
    with open(path, "w", encoding="utf-8") as doc:
        doc.write("{\n")
        _member(doc, "format", FORMAT)
        _member(doc, "push_preview", preview)
        n = _array(doc, "devices", ({k: r[k] for k in ("id", "platform", "token", "app_version", "locale", "created_at",
                                                       "updated_at")} for r in phones))
        _array(doc, "pushes", iter(sent), last=True)
        doc.write("}\n")
    zf.write(path, "devices.json")
    os.remove(path)
    return n


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
    from chatcore.wire import messages

    session_id = row["id"]
    prefix = s3.session_prefix(session_id)
    # the session's objects: referenced ones and any other (but a turn's spooled record: chatcore.spool)
    stored = {key for key in s3.list_keys(prefix) if not keys.is_spool_key(key)}
    files: dict[str, str] = {}  # key -> its file in the zip, each object written once

    def file_of(image: messages.StoredMedia) -> str | None:
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
        "cost": cost(row["cost_usd"], row["cost_in_rands"]),
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
        _array(doc, "runs", (_run(r) for r in _pages("runs", user_id, page=RUNS_PAGE, session_id=session_id)))
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
    documents = sorted(f for f in files.values() if f.startswith("documents/"))
    counts.photos += len(files) - len(documents)
    counts.documents += len(documents)
    return {"id": session_id, "agent": row["agent"], "team": row["team"], "title": row["title"],
            "created_at": row["created_at"], "updated_at": row["updated_at"], "file": file,
            "messages": n_messages, "photos": sorted(f for f in files.values() if f.startswith("photos/")),
            "documents": documents}


def _run(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "parent_run_id": r["parent_run_id"], "agent_name": r["agent_name"], "status": r["status"],
            "client_turn_id": r["client_turn_id"], "error_code": r["error_code"], "error_message": r["error_message"],
            "client_disconnected": r["client_disconnected"], "cancel_requested_at": r["cancel_requested_at"],
            "started_at": r["started_at"], "finished_at": r["finished_at"], "usage": token_counts(r),
            "cost": cost(r["cost_usd"], r["cost_in_rands"])}


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


def _pages(part: str, user_id: UUID, *, page: int = ROWS_PAGE, **params: Any) -> Iterator[dict[str, Any]]:
    """The owner's rows of one part of the export (``store.exports.ACCOUNT_PARTS``), a page per connection."""
    after = None
    while True:
        with db.connection() as conn:
            rows = exports.account_rows(conn, part, user_id, after=after, limit=page, **params)
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
    """A session's object in the zip: a PDF under documents/, a photo under photos/."""
    safe = name.replace("/", "_").replace("\\", "_").lstrip(".") or "photo"
    return f"{'documents' if safe.endswith('.pdf') else 'photos'}/{session_id}/{safe}"


def _extension(mime_type: str) -> str:
    import mimetypes

    return mimetypes.guess_extension(mime_type) or ""


# ---- JSON, written piece by piece

def _json(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        from chatcore.wire.amounts import decimal_string

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
