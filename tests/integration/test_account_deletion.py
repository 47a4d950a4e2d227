"""DELETE /me: everything of the caller is deleted (S3 included), running turns are stopped first and
what they cost is kept, only usage stays (with no user), and the same identity starts empty.

The proof is a scan of every table of the schema (read from the catalog, so a table added later is
scanned too) and of the whole bucket for anything of the deleted account: its ids, its sub, its
words and its photos' bytes. The scan is first shown to find the account everywhere it is stored.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal

import httpx
from psycopg import sql

from chatcore.money import report, rollup
from chatcore.store import usage
from tests.support.documents import pdf
from tests.support.images import b64, noise_png
from tests.support.streams import TurnInThread
from tests.support.uploads import uploaded

PROBLEM = "application/problem+json"
# Every table that holds something of an account (what the scan must find before the deletion).
HOLDERS = {"users", "sessions", "runs", "chat_events", "turn_events", "session_summaries", "uploads",
           "deleted_session_usage", "daily_costs", "exports", "resume_tokens", "memories", "budget_warnings"}


def tables(db_conn) -> list[str]:
    """Every table of the application's schema, from the catalog."""
    return [r["relname"] for r in db_conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname").fetchall()]


def scan_tables(db_conn, needles: set[str]) -> dict[str, set[str]]:
    """Each table's rows as text (every column), and which needles they contain."""
    found: dict[str, set[str]] = {}
    for table in tables(db_conn):
        query = sql.SQL("SELECT t::text AS row FROM {} t").format(sql.Identifier(table))
        for row in db_conn.execute(query):
            hits = {n for n in needles if n in row["row"]}
            if hits:
                found.setdefault(table, set()).update(hits)
    return found


def scan_bucket(s3, bucket: str, needles: set[str], hashes: set[str]) -> list[str]:
    """Keys of the bucket that name a needle or whose bytes are one of the photos (by sha256)."""
    hits = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if any(n in key for n in needles) or hashlib.sha256(body).hexdigest() in hashes:
                hits.append(key)
    return hits


def all_spend(db_conn) -> Decimal:
    """The cost in dollars of every usage row there is: every user's, and deleted accounts'."""
    return db_conn.execute(f"SELECT coalesce(sum(cost_usd), 0) AS usd FROM ({usage.usage_rows('true', 'true', 'true')}) x"
                           ).fetchone()["usd"]


def rolled_up(db_conn) -> Decimal:
    return db_conn.execute("SELECT coalesce(sum(cost_usd), 0) AS usd FROM daily_costs").fetchone()["usd"]


def roll_up_everything(db_conn) -> None:
    rollup.rollup(db_conn, date(2020, 1, 1), datetime.now(timezone.utc).date())


def final_cost(events: list[dict]) -> Decimal:
    return Decimal(events[-1]["data"]["cost"]["usd"])


@dataclass
class Account:
    """What the scenario stored of the account it deletes, and what finds it again: ``needles`` (its
    ids, its sub, its words) and ``hashes`` (of its photos' bytes)."""

    user_id: uuid.UUID
    agent_sid: str
    team_sid: str
    gone_sid: str
    upload: dict
    unused: dict
    export_id: uuid.UUID
    export_key: str
    marker: str
    photos: list[bytes]
    costs: list[Decimal]
    needles: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)
    photo_keys: list[str] = field(default_factory=list)

    @property
    def session_ids(self) -> list[str]:
        return [self.agent_sid, self.team_sid, self.gone_sid]


def an_account_in_every_table(user, db_conn, stack, s3) -> Account:
    """An agent session with an inline photo, an uploaded one and a PDF, a memory, a team session, a session
    deleted before (its usage kept), a summary, an upload never used, a resume token and an export."""
    bucket = stack.env["MEDIA_BUCKET"]
    marker = f"zebra{uuid.uuid4().hex[:12]}"
    photos = [noise_png(64, 48, seed=int(time.time() * 1000) % 100_000 + i) for i in range(3)]
    costs: list[Decimal] = []
    agent_sid = user.new_session()
    _, events = user.turn(agent_sid, message=f"{marker} one", images=[{"data": b64(photos[0])}])
    costs.append(final_cost(events))
    upload = uploaded(user, photos[1])
    _, events = user.turn(agent_sid, message=f"{marker} two", images=[{"upload_id": upload["upload_id"]}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    costs.append(final_cost(events))
    # a PDF, stored in S3 by reference (found again by its bytes' hash, as photos are)
    _, events = user.turn(agent_sid, message=f"{marker} my lease",
                          documents=[{"data": b64(pdf(2, marker=marker)), "name": f"{marker}.pdf"}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    costs.append(final_cost(events))
    _, events = user.turn(agent_sid, message=f"Remember that my locker code is {marker}")
    assert [e["data"]["action"] for e in events if e["event"] == "MemoryUpdated"] == ["saved"], events[-1]
    costs.append(final_cost(events))
    team_sid = user.client.post("/sessions", json={"team": "planner", "title": f"{marker} team"}).json()["id"]
    _, events = user.turn(team_sid, message=f"{marker} What is 6 * 7?")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    costs.append(final_cost(events))
    gone_sid = user.new_session()
    _, events = user.turn(gone_sid, message=f"{marker} soon deleted")
    costs.append(final_cost(events))
    assert user.client.delete(f"/sessions/{gone_sid}").status_code == 204
    run_of_agent = db_conn.execute("SELECT id FROM runs WHERE session_id = %s LIMIT 1", (agent_sid,)).fetchone()["id"]
    db_conn.execute("INSERT INTO session_summaries (session_id, summary, through_message_id, turns, run_id) "
                    "VALUES (%s, %s, %s, 1, %s)", (agent_sid, f"{marker} summary", uuid.uuid4(), run_of_agent))
    unused = uploaded(user, photos[2])
    # a browser's resume token for one of its turns
    assert user.client.post(f"/sessions/{agent_sid}/turns/{run_of_agent}/resume-token").status_code == 201
    user_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    # a budget warning of the month (chatcore.money.budgets: the row a BudgetWarning leaves)
    db_conn.execute("INSERT INTO budget_warnings (user_id, month, percent, monthly_budget_zar, spent_zar, run_id) "
                    "VALUES (%s, date_trunc('month', now())::date, 80, 100, 81, %s)", (user_id, run_of_agent))
    export_id = uuid.uuid4()
    export_key = f"{stack.env.get('MEDIA_PREFIX', 'media/')}exports/{export_id}.zip"
    s3.put_object(Bucket=bucket, Key=export_key, Body=f"{marker} export".encode())
    db_conn.execute("INSERT INTO exports (id, user_id, status, key, size, finished_at, expires_at) "
                    "VALUES (%s, %s, 'ready', %s, 10, now(), now() + interval '1 day')", (export_id, user_id, export_key))
    return Account(user_id, agent_sid, team_sid, gone_sid, upload, unused, export_id, export_key, marker, photos, costs)


def another_users_session(other_user, db_conn, s3, bucket: str) -> tuple[str, dict, list[str]]:
    """A session of another user with a photo: its id, its message count and its photos' keys."""
    other_sid = other_user.new_session()
    other_user.turn(other_sid, message="the other user's words", images=[{"data": b64(noise_png(32, 32, seed=7))}])
    other_before = db_conn.execute("SELECT (SELECT count(*) FROM chat_events WHERE session_id = %(s)s) AS messages",
                                   {"s": other_sid}).fetchone()
    other_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{other_sid}-").get("Contents", [])]
    assert other_keys
    return other_sid, other_before, other_keys


def find_needles(account: Account, user, db_conn, s3, bucket: str) -> None:
    """The needles: every id of the account, its sub, its words; the photos' stored bytes."""
    session_ids = account.session_ids
    run_ids = [str(r["id"]) for r in db_conn.execute(
        "SELECT id FROM runs WHERE session_id = ANY(%s)", ([uuid.UUID(s) for s in session_ids],)).fetchall()]
    message_ids = [str(r["id"]) for r in db_conn.execute(
        "SELECT id FROM chat_events WHERE session_id = ANY(%s)", ([uuid.UUID(s) for s in session_ids],)).fetchall()]
    account.needles = {str(account.user_id), user.sub, account.marker, account.upload["upload_id"],
                       account.unused["upload_id"], str(account.export_id), *session_ids, *run_ids, *message_ids}
    account.photo_keys = [o["Key"] for sid in session_ids
                          for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("Contents", [])]
    assert len(account.photo_keys) >= 3 and any(k.endswith(".pdf") for k in account.photo_keys)
    account.hashes = {hashlib.sha256(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
                      for k in account.photo_keys}
    account.hashes.add(hashlib.sha256(account.photos[2]).hexdigest())  # the unused upload's original


def assert_the_scan_finds_the_account_everywhere_it_is_stored(account: Account, db_conn, s3, bucket: str) -> None:
    before = scan_tables(db_conn, account.needles)
    assert HOLDERS <= set(before), HOLDERS - set(before)
    assert set(scan_bucket(s3, bucket, account.needles, account.hashes)) >= {*account.photo_keys, account.export_key}


def delete_me_until_deleted(user) -> None:
    """DELETE /me, then GET /me/deletion while a running turn is stopping, until it is done."""
    r = user.client.delete("/me")
    assert r.status_code in (200, 202), r.text
    while r.status_code == 202:  # the running turn is stopping
        assert r.json()["status"] == "deleting" and r.headers["location"] == "/me/deletion"
        time.sleep(0.3)
        r = user.client.get("/me/deletion")
        assert r.status_code in (200, 404), r.text
        if r.status_code == 404:
            assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "no-deletion"
            break
    else:
        assert r.json() == {"status": "deleted", "requested_at": None, "sessions_left": 0, "running_turns": 0}


def assert_nothing_of_the_account_is_left(account: Account, db_conn, s3, bucket: str) -> None:
    assert scan_tables(db_conn, account.needles) == {}
    assert scan_bucket(s3, bucket, account.needles, account.hashes) == []


def assert_its_usage_is_kept_with_no_user(db_conn, costs: list[Decimal], spend_before: Decimal,
                                          rolled_before: Decimal, cancelled: Decimal) -> None:
    """No money lost, the rollup's days unchanged; the spend report names them as deleted accounts."""
    assert all_spend(db_conn) == spend_before + cancelled
    assert rolled_up(db_conn) == rolled_before
    roll_up_everything(db_conn)
    assert rolled_up(db_conn) == spend_before + cancelled
    kept = db_conn.execute("SELECT coalesce(sum(cost_usd), 0) AS usd, count(*) AS n FROM deleted_session_usage "
                           "WHERE user_id IS NULL AND session_id IS NULL").fetchone()
    assert kept["usd"] >= sum(costs) + cancelled and kept["n"] > 0
    # the spend report by user names them as deleted accounts, and its total is every user's
    today = datetime.now(timezone.utc).date()
    by_user = report.build(db_conn, date(2020, 1, 1), today, by="user")
    assert usage.DELETED_ACCOUNTS in {r["user_sub"] for r in by_user.rows}
    assert by_user.total["cost_usd"] == spend_before + cancelled


def assert_the_other_user_is_untouched(other_user, db_conn, s3, bucket: str, other_sid: str, other_before: dict,
                                       other_keys: list[str]) -> None:
    assert other_user.client.get(f"/sessions/{other_sid}").status_code == 200
    assert db_conn.execute("SELECT count(*) AS messages FROM chat_events WHERE session_id = %s",
                           (other_sid,)).fetchone() == other_before
    assert all(s3.head_object(Bucket=bucket, Key=k) for k in other_keys)


def assert_the_same_sub_starts_empty(user, standin, old_session: str) -> None:
    """Nothing listed, its usage counting only new spend; deleting again is harmless, and deletes the
    new account."""
    assert user.client.get("/sessions").json() == {"items": [], "next_cursor": None}
    assert user.client.get(f"/sessions/{old_session}").status_code == 404
    assert user.client.get("/me/export").status_code == 404
    totals = user.client.get("/usage").json()["totals"]
    assert totals["turns"] == 0 and Decimal(totals["cost"]["usd"]) == 0
    standin.reset()
    _, events = user.turn(user.new_session(), message="hello again")
    assert events[-1]["event"] == "TurnCompleted"
    totals = user.client.get("/usage").json()["totals"]
    assert totals["turns"] == 1 and Decimal(totals["cost"]["usd"]) == final_cost(events)
    r = user.client.delete("/me")
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    assert user.client.get("/sessions").json()["items"] == []


def test_delete_me_leaves_nothing_of_the_account_but_anonymous_usage(
        user, other_user, standin, db_conn, server_url, stack, s3):
    bucket = stack.env["MEDIA_BUCKET"]
    account = an_account_in_every_table(user, db_conn, stack, s3)
    other_sid, other_before, other_keys = another_users_session(other_user, db_conn, s3, bucket)
    roll_up_everything(db_conn)
    find_needles(account, user, db_conn, s3, bucket)

    # a turn still running when the account is deleted
    answer = " ".join(f"word{i}" for i in range(400))
    standin.script([{"text": answer, "delay_ms": 100}])
    running = TurnInThread(user, server_url, account.agent_sid, "tell a long story")
    time.sleep(0.5)

    assert_the_scan_finds_the_account_everywhere_it_is_stored(account, db_conn, s3, bucket)
    spend_before, rolled_before = all_spend(db_conn), rolled_up(db_conn)
    delete_me_until_deleted(user)

    # the running turn was stopped, and what it cost is kept
    events = running.join()
    assert events[-1]["event"] == "TurnCancelled", events[-1]
    cancelled = final_cost(events)
    assert cancelled > 0

    assert_nothing_of_the_account_is_left(account, db_conn, s3, bucket)
    assert_its_usage_is_kept_with_no_user(db_conn, account.costs, spend_before, rolled_before, cancelled)
    assert_the_other_user_is_untouched(other_user, db_conn, s3, bucket, other_sid, other_before, other_keys)
    assert_the_same_sub_starts_empty(user, standin, account.agent_sid)


def test_deleting_an_account_with_nothing_stored_is_done_and_idempotent(user, db_conn):
    r = user.client.delete("/me")
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    assert user.client.delete("/me").status_code == 200
    r = user.client.get("/me/deletion")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM and r.json()["code"] == "no-deletion"
    assert db_conn.execute("SELECT count(*) AS n FROM users WHERE sub = %s", (user.sub,)).fetchone()["n"] == 0


def test_delete_me_needs_an_identity(server_url):
    r = httpx.delete(f"{server_url}/me")
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


def test_a_deletion_waiting_for_a_running_turn_answers_202_is_unreadable_at_once_and_finishes_by_itself(
        user, standin, db_conn, server_url, settings_env):
    settings_env.setenv("ACCOUNT_WAIT_SECONDS", "0")  # answer after one pass, whatever is left
    sid = user.new_session()
    standin.script([{"text": " ".join(f"w{i}" for i in range(300)), "delay_ms": 100}])
    running = TurnInThread(user, server_url, sid, "tell a long story")
    time.sleep(0.3)
    user_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]

    r = user.client.delete("/me")
    assert r.status_code == 202 and r.headers["location"] == "/me/deletion", r.text
    body = r.json()
    assert body["status"] == "deleting" and body["sessions_left"] == 1 and body["running_turns"] == 1
    assert body["requested_at"] is not None
    # unreadable at once, though its rows are still there
    assert user.client.get("/sessions").json()["items"] == []
    assert user.client.get(f"/sessions/{sid}/messages").status_code == 404
    assert db_conn.execute("SELECT count(*) AS n FROM sessions WHERE user_id = %s", (user_id,)).fetchone()["n"] == 1
    # a turn of the same identity in the old session is refused
    assert user.client.post(f"/sessions/{sid}/turns", json={"message": "still there?"}).status_code == 404
    # the turn stops, and the deletion ends by itself (the account function: a thread here)
    assert running.join()[-1]["event"] == "TurnCancelled"
    deadline = time.monotonic() + 20
    while (r := user.client.get("/me/deletion")).status_code == 200:
        assert r.json()["status"] == "deleting" and time.monotonic() < deadline, r.json()
        time.sleep(0.2)
    assert r.status_code == 404
    assert db_conn.execute("SELECT count(*) AS n FROM users WHERE id = %s", (user_id,)).fetchone()["n"] == 0
    assert db_conn.execute("SELECT count(*) AS n FROM account_deletions WHERE sub = %s",
                           (user.sub,)).fetchone()["n"] == 0


def test_a_deletion_interrupted_by_s3_stays_unreadable_and_the_next_call_finishes_it(
        user, standin, db_conn, stack, s3_behind_a_proxy, s3):
    sid = user.new_session()
    marker = f"okapi{uuid.uuid4().hex[:12]}"
    _, events = user.turn(sid, message=marker, images=[{"data": b64(noise_png(40, 40, seed=4242))}])
    assert events[-1]["event"] == "TurnCompleted"
    user_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    bucket = stack.env["MEDIA_BUCKET"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("Contents", [])]
    assert keys

    s3_behind_a_proxy.stalled.set()
    r = user.client.delete("/me")
    assert r.status_code == 202 and r.json()["status"] == "deleting", r.text  # accepted all the same
    assert user.client.get("/sessions").json()["items"] == []
    assert user.client.get(f"/sessions/{sid}").status_code == 404
    deletion = db_conn.execute("SELECT * FROM account_deletions WHERE user_id = %s", (user_id,)).fetchone()
    assert deletion["attempts"] >= 1 and "StorageUnavailable" in deletion["last_error"]
    assert db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id = %s", (sid,)).fetchone()["n"] > 0

    s3_behind_a_proxy.stalled.clear()  # S3 is back: calling again finishes it
    deadline = time.monotonic() + 30
    while (r := user.client.delete("/me")).status_code == 202:
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["status"] == "deleted"
    assert scan_tables(db_conn, {str(user_id), user.sub, sid, marker}) == {}
    assert not any(s3.list_objects_v2(Bucket=bucket, Prefix=k).get("Contents") for k in keys)


def test_a_photo_that_lands_after_its_account_was_deleted_is_not_left_in_s3(user, standin, stack, s3, monkeypatch):
    """A turn checks the session is the caller's, then puts its photos in S3: an account deleted in
    between has swept the session's objects already, so the turn (now a 404) deletes its own."""
    from chatcore.media import agno_storage

    sid = user.new_session()
    real_put = agno_storage.s3.put_image

    def put_after_the_deletion(key, content, mime_type):
        assert user.client.delete("/me").json()["status"] == "deleted"
        real_put(key, content, mime_type)

    monkeypatch.setattr(agno_storage.s3, "put_image", put_after_the_deletion)
    r, _ = user.turn(sid, message="a photo", images=[{"data": b64(noise_png(24, 24, seed=99))}])
    assert r.status_code == 404 and r.json()["code"] == "not-found"
    assert s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"], Prefix=f"media/{sid}-").get("KeyCount") == 0


def test_an_operator_deletes_an_account_from_the_command_line(user, standin, db_conn, capsys):
    from chatcore.account import deletion

    sid = user.new_session()
    _, events = user.turn(sid, message="hello")
    assert events[-1]["event"] == "TurnCompleted"
    assert deletion.main([user.sub]) == 0
    assert "deleted: nothing of" in capsys.readouterr().out
    assert db_conn.execute("SELECT count(*) AS n FROM sessions WHERE id = %s", (sid,)).fetchone()["n"] == 0
    assert db_conn.execute("SELECT count(*) AS n FROM users WHERE sub = %s", (user.sub,)).fetchone()["n"] == 0
    assert deletion.main([user.sub]) == 0  # nothing left: done again


# Tables that hold nothing of any user: the catalog, prices and rates, the rollup's state, the
# backfills' log and the migrations' ledger. Every other table must be deleted with its user.
NO_USER_DATA = {"agents", "teams", "team_members", "prices", "fx_rates", "rollup_state", "cost_backfills",
                "schema_migrations", "plans"}


def test_every_table_is_deleted_with_its_user_or_holds_no_user_data(db_conn):
    """A table added later either hangs off users by foreign keys that delete with it (ON DELETE
    CASCADE, or SET NULL), so an account's deletion deletes its rows, or is declared above as holding
    no user data: nothing is forgotten silently."""
    fks = db_conn.execute("""
        SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent, c.confdeltype AS on_delete
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'f' AND n.nspname = current_schema()""").fetchall()
    reached, frontier = {"users"}, ["users"]
    while frontier:
        parent = frontier.pop()
        for fk in fks:
            if fk["parent"] == parent and fk["child"] not in reached:
                assert fk["on_delete"] in ("c", "n"), f"{fk['child']} -> {parent} must be ON DELETE CASCADE or SET NULL"
                reached.add(fk["child"])
                frontier.append(fk["child"])
    everything = set(tables(db_conn))
    assert everything - reached - NO_USER_DATA == set(), "a table neither deleted with its user nor declared"
    assert reached & NO_USER_DATA == set()
    assert HOLDERS <= reached


def test_two_deletions_of_one_account_at_the_same_moment_are_one_and_leave_nothing(user, standin, db_conn, stack, s3):
    sids = []
    for i in range(3):
        sid = user.new_session()
        _, events = user.turn(sid, message=f"photo {i}", images=[{"data": b64(noise_png(30, 30, seed=500 + i))}])
        assert events[-1]["event"] == "TurnCompleted"
        sids.append(sid)
    user_id = db_conn.execute("SELECT id FROM users WHERE sub = %s", (user.sub,)).fetchone()["id"]
    spend_before = all_spend(db_conn)
    barrier, answers = threading.Barrier(2), []

    def delete() -> None:
        with httpx.Client(base_url=str(user.client.base_url), headers=user.headers, timeout=60) as c:
            barrier.wait()
            answers.append(c.delete("/me"))

    threads = [threading.Thread(target=delete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in answers) in ([200, 200], [200, 202], [202, 202]), [r.text for r in answers]
    deadline = time.monotonic() + 20
    while user.client.get("/me/deletion").status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert scan_tables(db_conn, {str(user_id), user.sub, *sids}) == {}
    assert not any(s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"], Prefix=f"media/{sid}-").get("Contents")
                   for sid in sids)
    assert all_spend(db_conn) == spend_before  # kept once: neither lost nor counted twice


def test_postgres_down_at_delete_me_is_a_503_and_changes_nothing(user, db_conn, postgres_down, monkeypatch):
    from chatcore import db
    from uuid6 import uuid7

    user_id, sid = uuid7(), uuid7()  # made here: the server's database is down
    db_conn.execute("INSERT INTO users (id, sub) VALUES (%s, %s)", (user_id, user.sub))
    db_conn.execute("INSERT INTO sessions (id, user_id, agent_id) SELECT %s, %s, id FROM agents "
                    "WHERE name = 'assistant'", (sid, user_id))
    for method, path in (("DELETE", "/me"), ("GET", "/me/deletion"), ("POST", "/me/export"), ("GET", "/me/export")):
        r = user.client.request(method, path)
        assert r.status_code == 503 and r.headers["retry-after"] == "5", (path, r.text)
        assert r.headers["content-type"] == PROBLEM and r.json()["code"] == "database-unavailable"
    assert db_conn.execute("SELECT sub FROM users WHERE id = %s", (user_id,)).fetchone()["sub"] == user.sub
    monkeypatch.undo()  # Postgres is back
    db.close_pool()
    assert [s["id"] for s in user.client.get("/sessions").json()["items"]] == [str(sid)]
    assert user.client.delete("/me").json()["status"] == "deleted"
    assert user.client.get("/sessions").json()["items"] == []


def test_a_user_an_administrator_deletes_in_cognito_leaves_nothing_of_the_account(standin, db_conn, server_url,
                                                                                  stack, s3):
    """Issue 29: Cognito's AdminDeleteUser, as EventBridge delivers it (events/'s sample, its sub the
    user's), through the account function as deployed: the same deletion as DELETE /me (the scan)."""
    import json
    import sys
    from pathlib import Path

    from local.invoke import Invoker
    from tests.support.users import User

    bucket = stack.env["MEDIA_BUCKET"]
    user = User(server_url, sub=str(uuid.uuid4()))  # a Cognito sub
    account = an_account_in_every_table(user, db_conn, stack, s3)
    roll_up_everything(db_conn)
    find_needles(account, user, db_conn, s3, bucket)
    assert_the_scan_finds_the_account_everywhere_it_is_stored(account, db_conn, s3, bucket)
    spend_before = all_spend(db_conn)
    sample = Path(__file__).resolve().parents[2] / "events" / "account-cognito-user-deleted.json"
    event = json.loads(sample.read_text())
    event["detail"]["requestParameters"]["username"] = event["detail"]["additionalEventData"]["sub"] = user.sub
    with Invoker(stack.env, log=sys.stderr) as invoker:
        result = invoker.invoke("AccountFunction", event)
        assert result.ok and result.payload == {"job": "cognito-deletion", "status": "deleted"}, result.payload
        assert_nothing_of_the_account_is_left(account, db_conn, s3, bucket)
        assert all_spend(db_conn) == spend_before  # its usage kept, with no user
        # delivered again (EventBridge retries): nothing left to do
        again = invoker.invoke("AccountFunction", event)
        assert again.ok and again.payload == {"job": "cognito-deletion", "status": "deleted"}
        # a call that failed deleted no one; an event naming no sub fails (to the failures queue)
        failed = {**event, "detail": {**event["detail"], "errorCode": "UserNotFoundException"}}
        assert invoker.invoke("AccountFunction", failed).payload["status"] == "ignored"
        hidden = json.loads(sample.read_text())
        hidden["detail"]["requestParameters"]["username"] = "HIDDEN_DUE_TO_SECURITY_REASONS"
        del hidden["detail"]["additionalEventData"]
        assert not invoker.invoke("AccountFunction", hidden).ok
