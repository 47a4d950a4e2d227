"""PDF documents in a turn (issue 26, step 3), end to end against the stand-in model (which reads the
PDFs with pypdf, bills each page and refuses more than 100 pages a request).

- A 60-page PDF sent through an upload (POST /uploads, then the presigned POST to the moto S3 server):
  its document block reaches the model; it is stored in S3 by reference (the row keeps the reference,
  its name and pages, never its bytes); priced from the tokens billed; GET /messages gives it back
  as a presigned URL with its name, pages and size; a later turn's request carries the same block
  again, and once a newer document leaves no room in the page budget, a placeholder naming it.
- Refused with 422 ``invalid-document`` naming the reason, before anything is stored or any model
  call: encrypted, 150 pages (the page limit), corrupt, not a PDF; someone else's upload is 404.
- Deleting the session removes its PDFs from S3 (account deletion: test_account_deletion's scan).
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal

import httpx
import pytest

from tests.support.documents import b64, corrupt_pdf, document_blocks, pdf
from tests.support.exports import download, exported, read_json
from tests.support.uploads import exists, new_upload, send_file, upload_row, uploaded

PROBLEM = "application/problem+json"
PAGE_TOKENS = 1_500  # the stand-in's bill for a page (local.anthropic_standin.DOCUMENT_PAGE_TOKENS)


def model_requests(standin) -> list[dict]:
    return [r["body"] for r in standin.requests() if r.get("body")]


def session_keys(s3, bucket: str, sid: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"media/{sid}-").get("Contents", [])]


def test_a_60_page_pdf_sent_through_an_upload_reaches_the_model_and_a_later_turn_still_reads_it(
        user, standin, db_conn, s3, bucket):
    lease = pdf(60, marker="lease")
    upload = new_upload(user, "application/pdf", len(lease))
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 1, 32 * 1024 * 1024] in policy["conditions"]  # DOCUMENT_MAX_BYTES
    assert {"Content-Type": "application/pdf"} in policy["conditions"]
    send_file(upload, lease)
    sid = user.new_session()
    standin.reset()
    r, events = user.turn(sid, message="What does my lease say?",
                          documents=[{"upload_id": upload["upload_id"], "name": "lease.pdf"}])
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", (r.text[:500], events[-1:])
    run_id = events[-1]["data"]["run_id"]

    # the model got the PDF as a base64 document block, as sent, and read its 60 pages
    [first] = model_requests(standin)
    [block] = document_blocks(first)
    assert block == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                    "data": b64(lease)}}
    assert "I can read 1 PDF document(s) (60 pages)." in "".join(
        e["data"].get("content") or "" for e in events if e["event"] == "RunContent")

    # stored by reference: the row keeps no bytes; the object is the session's
    parts = db_conn.execute("SELECT message_parts FROM chat_events WHERE run_id = %s AND role = 'user'",
                            (run_id,)).fetchone()["message_parts"]
    [file] = parts["files"]
    assert "content" not in file and "url" not in file and file["name"] == "lease.pdf"
    assert file["metadata"] == {"pages": 60} and file["mime_type"] == "application/pdf"
    key = file["media_reference"]["storage_key"]
    assert key.startswith(f"media/{sid}-") and key.endswith(".pdf")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == lease
    assert b64(lease)[:200] not in json.dumps(parts)
    # the original upload is used and deleted
    assert not exists(s3, bucket, upload["fields"]["key"]) and upload_row(db_conn, upload["upload_id"])["consumed_at"]

    # priced from the tokens billed: the pages are input tokens of the answer's row
    row = db_conn.execute("SELECT input_tokens, cache_read_tokens, cache_write_tokens, cost_usd FROM chat_events "
                          "WHERE run_id = %s AND role = 'assistant'", (run_id,)).fetchone()
    assert row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"] >= 60 * PAGE_TOKENS
    assert row["cost_usd"] > 0 and Decimal(events[-1]["data"]["cost"]["usd"]) >= row["cost_usd"]

    # GET /messages: the document as a short-lived URL with its name, pages and size
    [message] = [m for m in user.client.get(f"/sessions/{sid}/messages").json()["items"] if m["role"] == "user"]
    [doc] = message["documents"]
    assert (doc["name"], doc["pages"], doc["size"], doc["mime_type"]) == ("lease.pdf", 60, len(lease), "application/pdf")
    assert httpx.get(doc["url"]).content == lease and doc["expires_in"] > 0

    # a later turn: the same block again (rebuilt from the stored reference)
    standin.reset()
    _, events = user.turn(sid, message="And the rent?")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    [second] = model_requests(standin)
    assert document_blocks(second) == [block]
    assert block in second["messages"][0]["content"]  # in the first turn's user message, as it was sent


def test_an_older_pdf_becomes_a_placeholder_once_the_page_budget_says_so(user, standin):
    sid = user.new_session()
    first, second = pdf(60, marker="first"), pdf(60, marker="second")
    _, events = user.turn(sid, message="Here is the first", documents=[{"data": b64(first), "name": "first.pdf"}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    standin.reset()
    # 60 + 60 pages are more than a request's 100 (CONTEXT_MAX_DOCUMENT_PAGES): the first is left out
    _, events = user.turn(sid, message="And the second", documents=[{"data": b64(second), "name": "second.pdf"}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    [body] = model_requests(standin)
    [block] = document_blocks(body)
    assert block["source"]["data"] == b64(second)
    first_turn = json.dumps(body["messages"][0])
    assert "earlier document(s) of this message left out: first.pdf (60 pages)" in first_turn
    assert b64(first)[:100] not in json.dumps(body)
    # a turn without a new document: the newest (60 pages) fits again, the first still does not
    standin.reset()
    _, events = user.turn(sid, message="Compare them")
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    [body] = model_requests(standin)
    assert [b["source"]["data"] for b in document_blocks(body)] == [b64(second)]


def refused(user, standin, db_conn, documents: list[dict], status: int, code: str, message: str = "read this") -> dict:
    """A turn with ``documents`` is refused with ``status``/``code``: no model call, no run, nothing stored."""
    sid = user.new_session()
    standin.reset()
    r, _ = user.turn(sid, message=message, documents=documents)
    assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM), (r.status_code, r.text)
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status, problem
    assert standin.requests() == []
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 0
    return problem


def test_an_encrypted_pdf_is_422_naming_the_reason(user, standin, db_conn):
    problem = refused(user, standin, db_conn, [{"data": b64(pdf(3, password="hunter2"))}], 422, "invalid-document")
    assert problem["reason"] == "encrypted" and problem["field"] == "documents[0].data"
    assert "encrypted" in problem["detail"]


def test_a_150_page_pdf_is_422_naming_the_page_limit_inline_or_uploaded(user, standin, db_conn):
    big = pdf(150)
    problem = refused(user, standin, db_conn, [{"data": b64(big)}], 422, "invalid-document")
    assert problem["reason"] == "too-many-pages" and (problem["pages"], problem["max_pages"]) == (150, 100)
    assert "150 pages" in problem["detail"] and "at most 100" in problem["detail"]
    assert "DOCUMENT_MAX_PAGES" in problem["detail"]
    upload = uploaded(user, big, "application/pdf")
    problem = refused(user, standin, db_conn, [{"upload_id": upload["upload_id"]}], 422, "invalid-document")
    assert problem["reason"] == "too-many-pages" and problem["field"] == "documents[0].upload_id"


@pytest.mark.parametrize("content, reason", [
    (corrupt_pdf(), "corrupt"),
    (b"%PDF-1.4\n" + b"not really" * 5, "corrupt"),
    (b"PK\x03\x04 a zip file, not a PDF" * 10, "not-a-pdf"),
    (b"\x89PNG\r\n\x1a\n a photo is not a document", "not-a-pdf"),
], ids=["corrupt", "truncated", "zip", "png"])
def test_a_corrupt_pdf_or_not_a_pdf_is_422_naming_the_reason(user, standin, db_conn, content, reason):
    problem = refused(user, standin, db_conn, [{"data": b64(content)}], 422, "invalid-document")
    assert problem["reason"] == reason and problem["field"] == "documents[0].data"


def test_a_photo_upload_is_not_a_document_and_a_document_needs_one_source(user, standin, db_conn):
    from tests.support.images import SMALL_PNG

    photo = uploaded(user, SMALL_PNG, "image/png")
    problem = refused(user, standin, db_conn, [{"upload_id": photo["upload_id"]}], 422, "invalid-document")
    assert problem["reason"] == "not-a-pdf"
    for doc in ({}, {"data": b64(pdf(1)), "upload_id": photo["upload_id"]}, {"name": "x.pdf"},
                {"upload_id": photo["upload_id"], "mime_type": "application/pdf"}, {"data": b64(pdf(1)), "mime_type": "text/plain"}):
        refused(user, standin, db_conn, [doc], 422, "invalid-input")


def test_another_users_pdf_upload_is_refused_like_an_unknown_one(user, other_user, standin, db_conn):
    theirs = uploaded(other_user, pdf(2, marker="theirs"), "application/pdf")
    problem = refused(user, standin, db_conn, [{"upload_id": theirs["upload_id"]}], 404, "upload-not-found")
    assert problem["field"] == "documents[0].upload_id"
    assert upload_row(db_conn, theirs["upload_id"])["consumed_at"] is None  # still theirs to use


def test_a_client_turn_id_sent_again_without_its_pdf_or_with_another_is_a_409(user, standin):
    sid = user.new_session()
    letter = {"data": b64(pdf(1, marker="a letter")), "mime_type": "application/pdf"}
    _, first = user.turn(sid, message="read this", documents=[letter], client_turn_id="with-a-pdf")
    assert first[-1]["event"] == "TurnCompleted"
    for documents in ([], [letter, letter]):
        r = user.client.post(f"/sessions/{sid}/turns", json={
            "message": "read this", "documents": documents, "client_turn_id": "with-a-pdf"})
        assert r.status_code == 409 and r.json()["code"] == "client-turn-id-reused", r.text
    _, again = user.turn(sid, message="read this", documents=[letter], client_turn_id="with-a-pdf")
    assert again[-1]["event"] == "TurnCompleted"  # the same body: a retry, answered from what is stored
    assert again[-1]["data"]["run_id"] == first[-1]["data"]["run_id"]


def test_a_document_alone_is_a_turn_and_deleting_the_session_removes_its_pdfs(user, standin, s3, bucket):
    sid = user.new_session()
    letter = pdf(2, marker="school letter")
    r, events = user.turn(sid, documents=[{"data": b64(letter), "mime_type": "application/pdf"}])
    assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", (r.text[:300], events[-1:])
    digest = hashlib.sha256(letter).hexdigest()
    keys = session_keys(s3, bucket, sid)
    assert [k for k in keys if k.endswith(".pdf")] == [f"media/{sid}-{digest[:32]}.pdf"]
    assert user.client.delete(f"/sessions/{sid}").status_code == 204
    assert session_keys(s3, bucket, sid) == []


def test_the_export_holds_each_pdf_as_sent_and_names_it_in_its_message(user, standin):
    sid = user.new_session()
    payslip = pdf(3, marker="payslip")
    _, events = user.turn(sid, message="my payslip", documents=[{"data": b64(payslip), "name": "payslip.pdf"}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    body = exported(user)
    assert body["contents"]["documents"] == 1 and body["contents"]["photos"] == 0
    zf = download(body)
    [entry] = read_json(zf, "account.json")["sessions"]
    [file] = entry["documents"]
    assert file.startswith(f"documents/{sid}/") and file.endswith(".pdf") and entry["photos"] == []
    assert zf.read(file) == payslip
    [message] = [m for m in read_json(zf, entry["file"])["messages"] if m["role"] == "user"]
    assert message["documents"] == [{"id": message["documents"][0]["id"], "name": "payslip.pdf",
                                     "mime_type": "application/pdf", "pages": 3, "size": len(payslip), "file": file}]


def test_a_team_reads_the_pdf_and_its_members_rows_keep_only_the_reference(user, standin, db_conn):
    sid = user.client.post("/sessions", json={"team": "planner"}).json()["id"]
    letter = pdf(4, marker="team letter")
    _, events = user.turn(sid, message="What is 6 * 7? Also see the letter.",
                          documents=[{"data": b64(letter), "name": "letter.pdf"}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    bodies = model_requests(standin)
    assert bodies and all(len(document_blocks(b)) >= 1 for b in bodies[:1])  # the leader read it
    assert b64(letter) in json.dumps(document_blocks(bodies[0]))
    rows = db_conn.execute("SELECT message_parts::text AS parts FROM chat_events WHERE session_id = %s", (sid,)).fetchall()
    assert rows and not any(b64(letter)[:200] in r["parts"] for r in rows)  # never the bytes in a row


def test_the_budget_reservation_counts_the_pdf_pages(user, standin, db_conn):
    """A turn's reservation (the most it can cost, refused with 402 before any model call) includes its
    PDF's pages: 60 pages are 120,000 estimated tokens, over R 6 a model call at the cheapest price."""
    from chatcore.money import budgets

    sid = user.new_session()
    budgets.set_budget(db_conn, user.sub, Decimal("0.01"))
    standin.reset()
    r, _ = user.turn(sid, message="read this")
    assert r.status_code == 402, r.text
    plain = Decimal(r.json()["reservation_zar"])
    r, _ = user.turn(sid, message="read this", documents=[{"data": b64(pdf(60, marker="budget"))}])
    assert r.status_code == 402 and r.json()["code"] == "budget-exceeded", r.text
    assert Decimal(r.json()["reservation_zar"]) > plain + Decimal("6")
    assert standin.requests() == []


def test_a_refused_turn_deletes_only_the_pdfs_no_stored_message_names(user, standin, db_conn, s3, bucket):
    """The turn puts its PDFs in S3 before its transaction; refused (here: 402), it deletes those no
    stored message names, and keeps the object of the same PDF an earlier turn of the session sent."""
    from chatcore.money import budgets

    sid = user.new_session()
    kept, new = pdf(2, marker="sent before"), pdf(2, marker="refused")
    _, events = user.turn(sid, message="first", documents=[{"data": b64(kept)}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    [kept_key] = [k for k in session_keys(s3, bucket, sid) if k.endswith(".pdf")]
    budgets.set_budget(db_conn, user.sub, Decimal("0.01"))
    r, _ = user.turn(sid, message="again", documents=[{"data": b64(kept)}, {"data": b64(new)}])
    assert r.status_code == 402, r.text
    assert [k for k in session_keys(s3, bucket, sid) if k.endswith(".pdf")] == [kept_key]
