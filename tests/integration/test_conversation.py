"""Conversations that survive the real Claude API's limits, through the served API and the stand-in
that refuses what the Messages API refuses: phone photos normalised at the door (no GPS anywhere),
HEIC, albums, a long chat that keeps its first fact and reads its history from the prompt cache,
long notes under a small budget, and a session that recovers after the model refused its size."""

from __future__ import annotations

import base64
import io
import json
import time
from decimal import Decimal

import boto3
import httpx
import numpy as np
import pytest
from PIL import Image

from chatcore.config import get_settings
from tests.support.images import assert_clean, b64, exif_with_gps
from tests.support.turns import image_blocks

MAX_EDGE = 1568


@pytest.fixture(scope="module")
def phone_photos():
    """Twenty different 4032x3024 phone JPEGs of ~3.5 MB, each with GPS and camera EXIF."""
    rng = np.random.default_rng(3)
    y = np.linspace(0, 255, 3024)[:, None]
    x = np.linspace(0, 255, 4032)[None, :]
    base = np.stack([(x + y) / 2, np.broadcast_to(x, (3024, 4032)), np.broadcast_to(y, (3024, 4032))], -1)
    pixels = np.clip(base + rng.normal(0, 14, base.shape), 0, 255).astype("uint8")
    exif = exif_with_gps()
    photos = []
    for i in range(20):
        pixels[:40, i * 100:(i + 1) * 100] = (255 - 10 * i, 10 * i, 128)  # a different patch each time
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=85, exif=exif)
        photos.append(out.getvalue())
    return photos


def test_twenty_phone_photos_complete_without_gps_anywhere(user, standin, stack, phone_photos):
    assert all(3_000_000 < len(p) < 4_000_000 for p in phone_photos)
    sid = user.new_session()
    for i, photo in enumerate(phone_photos):
        r, events = user.turn(sid, message=f"Photo {i + 1}: what do you see?",
                              images=[{"data": b64(photo), "mime_type": "image/jpeg"}])
        assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", events[-1]
    requests = standin.requests()
    assert all("error" not in (r.get("response") or {}) for r in requests)
    for request in requests:
        assert len(json.dumps(request["body"])) < 32 * 1024 * 1024
        blocks = image_blocks(request["body"])
        assert len(blocks) <= 20
        for block in blocks:
            img = assert_clean(base64.b64decode(block["source"]["data"]))
            assert max(img.size) <= MAX_EDGE and img.size[0] * img.size[1] <= 1_150_000
            assert img.size == (928, 1238)  # turned upright by its EXIF orientation, then downscaled
    # what S3 holds and what the app is handed back are the normalised photos too
    s3 = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.env["MEDIA_BUCKET"],
                                                   Prefix=f"media/{sid}-").get("Contents", [])]
    assert len(keys) == 20
    for key in keys:
        assert_clean(s3.get_object(Bucket=stack.env["MEDIA_BUCKET"], Key=key)["Body"].read())
    items = user.client.get(f"/sessions/{sid}/messages", params={"limit": 200}).json()["items"]
    urls = [image["url"] for m in items for image in m["images"]]
    assert len(urls) == 20
    for url in urls[:5]:
        assert_clean(httpx.get(url).content)


def test_an_iphone_heic_photo_completes_and_the_model_gets_a_jpeg(user, standin):
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (2016, 1512), (30, 120, 200)).save(out, "HEIF", exif=exif_with_gps())
    heic = out.getvalue()
    assert heic[4:12] == b"ftypheic"
    sid = user.new_session()
    r, events = user.turn(sid, message="What is this?", images=[{"data": b64(heic), "mime_type": "image/heic"}])
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    [block] = image_blocks(standin.requests()[-1]["body"])
    assert block["source"]["media_type"] in ("image/jpeg", "image/png", "image/webp")
    img = assert_clean(base64.b64decode(block["source"]["data"]))
    assert img.format in ("JPEG", "PNG", "WEBP") and max(img.size) <= MAX_EDGE


def _flat_jpeg(width: int, height: int, shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 255 - shade, 90)).save(out, "JPEG", quality=80)
    return out.getvalue()


def test_albums_of_twenty_photos_every_turn_completes(user, standin):
    sid = user.new_session()
    for turn in range(10):
        side = 300 if turn < 7 else 2500  # small photos for 7 turns, then 2500 px ones
        album = [_flat_jpeg(side, side * 3 // 4, (turn * 20 + i) % 256) for i in range(20)]
        r, events = user.turn(sid, message=f"Album {turn + 1}", images=[{"data": b64(p)} for p in album])
        assert r.status_code == 200 and events[-1]["event"] == "TurnCompleted", (turn, events[-1:])
    for request in standin.requests():
        blocks = image_blocks(request["body"])
        assert len(blocks) <= 20
        assert all(max(Image.open(io.BytesIO(base64.b64decode(b["source"]["data"]))).size) <= MAX_EDGE
                   for b in blocks)
    # the newest album is what the model sees; older photos became a placeholder in its copy
    last = standin.requests()[-1]["body"]
    assert "earlier photo(s) of this message left out" in json.dumps(last["messages"])
    # each request but the first two reads the history before the previous album from the cache (the
    # breakpoint at the history's end: the new album's 21 blocks are past the top-level one's lookback)
    requests = standin.requests()
    assert all(r["response"]["usage"]["cache_read_input_tokens"] > 0 for r in requests[2:]), [
        r["response"]["usage"] for r in requests]
    for r in requests[1:]:
        marked = [i for i, m in enumerate(r["body"]["messages"]) if isinstance(m["content"], list)
                  and any("cache_control" in b for b in m["content"])]
        assert marked == [len(r["body"]["messages"]) - 2], marked  # the history's last message, only


def _input_cost(usage: dict, *, cached: bool) -> float:
    """Input cost in units of the base input price (Anthropic's multipliers: write 1.25x, read 0.1x)."""
    prompt = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    if not cached:
        return prompt
    return usage["input_tokens"] + 0.1 * usage["cache_read_input_tokens"] + 1.25 * usage["cache_creation_input_tokens"]


def test_a_forty_turn_chat_keeps_the_first_fact_and_reads_its_history_from_the_cache(user, standin):
    sid = user.new_session()
    facts = "Remember this: my locker code is 7319 and my cat is called Mo. " * 3
    _, events = user.turn(sid, message=facts)
    assert events[-1]["event"] == "TurnCompleted"
    for i in range(2, 41):
        _, events = user.turn(sid, message=f"Turn {i}: tell me one more thing about the history of tea, "
                                           f"in particular the tea trade of the year {1700 + i}.")
        assert events[-1]["event"] == "TurnCompleted", (i, events[-1])
    requests = standin.requests()
    last = requests[-1]["body"]
    assert "locker code is 7319" in json.dumps(last["messages"])  # turn 1's fact, at turn 40
    assert all(r["body"].get("cache_control", {}).get("type") == "ephemeral" for r in requests)
    assert all(any("cache_control" in b for b in r["body"]["system"]) for r in requests)
    later = [r["response"]["usage"] for r in requests[len(requests) // 2:]]
    assert all(u["cache_read_input_tokens"] > 0 for u in later)
    # the history is read from the cache: the input cost is a fraction of the uncached one
    usages = [r["response"]["usage"] for r in requests]
    with_cache = sum(_input_cost(u, cached=True) for u in usages)
    without = sum(_input_cost(u, cached=False) for u in usages)
    assert with_cache <= 0.4 * without, (with_cache, without)


@pytest.fixture()
def small_budget(monkeypatch, standin):
    """CONTEXT_MAX_TOKENS=40000 for this test's turns (settings are re-read), restored afterwards."""
    monkeypatch.setenv("CONTEXT_MAX_TOKENS", "40000")
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
    standin.reset()  # the stand-in's limits back to its defaults for the tests after this one


def test_long_notes_fit_a_small_budget_and_a_small_context_window(user, standin, small_budget):
    standin.configure(context_window=60_000)
    sid = user.new_session()
    for i in range(16):
        note = f"Note {i + 1}. " + ("The quick brown fox jumps over the lazy dog. " * 700)[:30_000]
        _, events = user.turn(sid, message=note)
        assert events[-1]["event"] == "TurnCompleted", (i, events[-1])
    for request in standin.requests():
        u = request["response"]["usage"]
        assert u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"] <= 60_000


def test_a_message_too_large_for_one_request_is_refused_before_the_model(user, standin, small_budget, db_conn):
    sid = user.new_session()
    huge = "x" * 32_000  # 8,000 tokens: fits 40,000 ...
    _, events = user.turn(sid, message=huge)
    assert events[-1]["event"] == "TurnCompleted"
    standin.reset()
    # ... but not with CONTEXT_MAX_TOKENS at 5,000
    small_budget.setenv("CONTEXT_MAX_TOKENS", "5000")
    get_settings.cache_clear()
    r = user.client.post(f"/sessions/{sid}/turns", json={"message": huge})
    assert r.status_code == 413 and r.json()["code"] == "context-too-large", r.text
    assert "CONTEXT_MAX_TOKENS" in r.json()["detail"]
    assert standin.requests() == []
    assert db_conn.execute("SELECT count(*) AS n FROM runs WHERE session_id = %s", (sid,)).fetchone()["n"] == 1


def test_a_session_recovers_after_the_model_refused_its_size(user, standin, small_budget):
    standin.configure(context_window=20_000)  # smaller than CONTEXT_MAX_TOKENS: the model will refuse
    sid = user.new_session()
    note = "A long note about tea. " * 1300  # ~30,000 characters, ~7,500 tokens
    outcomes = []
    for _ in range(8):
        _, events = user.turn(sid, message=note)
        outcomes.append(events[-1]["event"])
    refused = [i for i, o in enumerate(outcomes) if o == "TurnFailed"]
    assert refused, outcomes  # the window was reached ...
    for i in refused:  # ... and the turn after each refusal completed: the session never stays broken
        assert i + 1 == len(outcomes) or outcomes[i + 1] == "TurnCompleted", outcomes
    assert outcomes.count("TurnFailed") <= 2, outcomes


def test_older_turns_are_compacted_into_a_priced_summary_never_silently_dropped(user, standin, small_budget,
                                                                                 db_conn):
    standin.configure(context_window=60_000)
    sid = user.new_session()
    body = ("The quick brown fox jumps over the lazy dog. " * 700)[:30_000]
    for i in range(16):
        note = (f"Remember this: my locker code is 7319. Note 1. {body}" if i == 0 else f"Note {i + 1}. {body}")
        _, events = user.turn(sid, message=note)
        assert events[-1]["event"] == "TurnCompleted", (i, events[-1])
    # the fact of turn 1 reaches the model at turn 16, through the summary
    last = standin.requests()[-1]["body"]
    assert "locker code is 7319" in json.dumps(last["messages"]) and "Summary of the earlier" in json.dumps(last)
    # each compaction is a priced model call of the turn that made it, in steps, not every turn
    runs = db_conn.execute(
        "SELECT c.id, c.parent_run_id, c.status, c.cost_usd FROM runs c JOIN runs t ON t.id = c.parent_run_id "
        "WHERE t.session_id = %s AND c.agent_name = 'compaction' ORDER BY c.id", (sid,)).fetchall()
    # (7,500-token notes and a 40,000-token budget: the window holds four of them, so a step is two turns)
    assert 1 <= len(runs) <= 8, runs
    turn_order = [r["id"] for r in db_conn.execute(
        "SELECT id FROM runs WHERE session_id = %s AND parent_run_id IS NULL ORDER BY id", (sid,)).fetchall()]
    steps = [turn_order.index(r["parent_run_id"]) for r in runs]
    assert all(b - a >= 2 for a, b in zip(steps, steps[1:])), steps  # never two turns in a row
    for run in runs:
        assert run["status"] == "completed" and run["cost_usd"] > 0
        row = db_conn.execute("SELECT role, model_id, cost_usd, cost_in_rands, message_parts FROM chat_events "
                              "WHERE run_id = %s", (run["id"],)).fetchone()
        assert row["role"] == "assistant" and row["model_id"] == "claude-haiku-5-5" and row["cost_in_rands"] > 0
        turn = db_conn.execute("SELECT cost_usd FROM runs WHERE id = %s", (run["parent_run_id"],)).fetchone()
        assert turn["cost_usd"] >= run["cost_usd"]  # the turn's total includes its compaction
    summary = db_conn.execute("SELECT summary, turns, run_id FROM session_summaries WHERE session_id = %s",
                              (sid,)).fetchone()
    assert "7319" in summary["summary"] and summary["run_id"] == runs[-1]["id"]
    # the conversation as stored is untouched: every note is listed, no summary call among them
    items = user.client.get(f"/sessions/{sid}/messages", params={"limit": 200}).json()["items"]
    assert len([m for m in items if m["role"] == "user"]) == 16
    assert all(m["agent_name"] != "compaction" for m in items)
    # and what it cost is in the user's usage
    usage = user.client.get("/usage").json()
    stored = db_conn.execute("SELECT sum(cost_in_rands) AS zar FROM chat_events WHERE session_id = %s",
                             (sid,)).fetchone()["zar"]
    assert sum(Decimal(d["cost"]["zar"]) for d in usage["by_day"]) >= stored > 0


@pytest.fixture()
def one_hour_cache(models_env, standin):
    """PROMPT_CACHE_TTL=1h for this test: the models (built once per process) are built anew."""
    models_env(PROMPT_CACHE_TTL="1h")


def test_one_hour_caching_writes_are_stored_and_priced_at_their_own_rate(user, standin, one_hour_cache, db_conn):
    from chatcore.money.cost import stored_amounts
    from chatcore.money.prices import TokenUsage, default_price_book

    sid = user.new_session()
    _, events = user.turn(sid, message="Please keep this long note in mind. " * 200)  # ~1,800 tokens
    assert events[-1]["event"] == "TurnCompleted", events[-1]
    request = standin.requests()[-1]
    assert request["body"]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert all(b.get("cache_control", {}).get("ttl") == "1h" for b in request["body"]["system"] if "cache_control" in b)
    written = request["response"]["usage"]["cache_creation"]
    assert written["ephemeral_1h_input_tokens"] > 0 and written["ephemeral_5m_input_tokens"] == 0
    row = db_conn.execute(
        "SELECT model_id, created_at, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "cache_write_1h_tokens, cost_usd, fx_rate FROM chat_events WHERE session_id = %s AND role = 'assistant' "
        "ORDER BY id DESC LIMIT 1", (sid,)).fetchone()
    assert row["cache_write_1h_tokens"] == row["cache_write_tokens"] == written["ephemeral_1h_input_tokens"]
    usage = TokenUsage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"],
                       row["cache_write_1h_tokens"])
    book = default_price_book()
    one_hour = book.cost_usd(row["model_id"], usage, row["created_at"])
    five_minutes = book.cost_usd(row["model_id"], TokenUsage(*[getattr(usage, f) for f in (
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")]), row["created_at"])
    assert row["cost_usd"] == stored_amounts(one_hour.usd, row["fx_rate"])[0] > five_minutes.usd


NOTE = ("The quick brown fox jumps over the lazy dog. " * 700)[:30_000]  # ~7,500 tokens
SUMMARISER = "claude-haiku-5-5"


def _compaction_requests(standin) -> list[dict]:
    return [r for r in standin.requests() if "You summarise conversations" in json.dumps((r.get("body") or {}).get("system"))]


def test_the_compaction_runs_beside_the_answer_and_never_twice_at_once(user, standin, small_budget, db_conn):
    """The turn that starts a compaction streams its answer while the summariser is still working
    (the summariser here takes 2 s to answer, the turn's model nothing): the first answer event
    arrives with the summariser's request sent and not yet answered. Meanwhile a second turn of the
    session is refused (409) and starts no compaction of its own; the summary is stored with the
    turn, priced, and the next turns read it."""
    from tests.support.streams import read_events

    standin.configure(latency_ms={SUMMARISER: 2000})
    sid = user.new_session()
    compacting_turn = None
    for i in range(8):
        message = f"Note 1: my locker code is 7319. {NOTE}" if i == 0 else f"Note {i + 1}. {NOTE}"
        before = len(_compaction_requests(standin))
        with user.client.stream("POST", f"/sessions/{sid}/turns", json={"message": message}) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            read_events(lines, stop_after=lambda evs: evs[-1]["event"] == "RunContent")
            # the answer is streaming: no summary of this turn has come back yet
            answered_at_first_content = [c for c in _compaction_requests(standin)[before:] if c["response"] is not None]
            pending = []
            for _ in range(50):  # the summariser's request, sent beside the answer, is still unanswered
                pending = [c for c in _compaction_requests(standin)[before:] if c["response"] is None]
                if pending:
                    break
                time.sleep(0.02)
            if pending:  # a second turn of the session meanwhile: 409, and no second compaction
                second = user.client.post(f"/sessions/{sid}/turns", json={"message": "and another thing"})
                assert second.status_code == 409 and second.json()["code"] == "turn-in-progress", second.text
            events = read_events(lines)
        assert events[-1]["event"] == "TurnCompleted", (i, events[-1])
        if len(_compaction_requests(standin)) > before:
            compacting_turn = events[-1]["data"]["run_id"]
            assert answered_at_first_content == [] and pending, "the answer waited for the summary"
            break
    assert compacting_turn is not None, "no turn compacted"
    assert len(_compaction_requests(standin)) == 1  # the refused turn started none
    runs = db_conn.execute("SELECT id, parent_run_id, status, cost_usd FROM runs WHERE session_id = %s "
                           "AND agent_name = 'compaction'", (sid,)).fetchall()
    assert [str(r["parent_run_id"]) for r in runs] == [compacting_turn] and runs[0]["cost_usd"] > 0
    summary = db_conn.execute("SELECT summary, run_id FROM session_summaries WHERE session_id = %s",
                              (sid,)).fetchone()
    assert summary["run_id"] == runs[0]["id"] and "7319" in summary["summary"]
    # the next turn reads the summary (and starts no compaction: the rest is within three quarters)
    _, events = user.turn(sid, message="What is my locker code?")
    assert events[-1]["event"] == "TurnCompleted"
    last = standin.requests()[-1]["body"]
    sent = json.dumps(last["messages"])
    assert "Summary of the earlier" in sent
    # and the turns the summary does not cover: the one that compacted, and the one before it
    assert f"Note {i + 1}. " in sent and f"Note {i}. " in sent, sent[:300]
    assert len(_compaction_requests(standin)) == 1


def test_a_failed_compaction_loses_nothing_of_its_turn(user, standin, small_budget, db_conn):
    """The summariser refuses every request (its context window is tiny): each turn is stored and
    answered as if no compaction had been tried, with no summary; the next turn tries again."""
    standin.configure(context_window={SUMMARISER: 500})
    sid = user.new_session()
    for i in range(7):
        _, events = user.turn(sid, message=f"Note {i + 1}. {NOTE}")
        assert events[-1]["event"] == "TurnCompleted", (i, events[-1])
    tried = _compaction_requests(standin)
    assert len(tried) >= 2 and all(r["response"].get("status") == 400 for r in tried)  # each turn tried again
    assert db_conn.execute("SELECT count(*) AS n FROM session_summaries WHERE session_id = %s",
                           (sid,)).fetchone()["n"] == 0
    rows = db_conn.execute("SELECT count(*) AS n FROM chat_events WHERE session_id = %s AND role = 'user'",
                           (sid,)).fetchone()
    assert rows["n"] == 7
