"""The main job, end to end on the local stack: `bin/demo`.

Starts Postgres, S3 (moto) and the model (real Claude with ANTHROPIC_API_KEY, else
ANTHROPIC_BASE_URL, else the local stand-in), serves the chat API over HTTP, streams a turn with a
photo through it, then a follow-up turn that relies on the stored history, then a turn that asks
the assistant to remember something, and a second session that knows it; prints what was stored:
rows, S3 keys, tokens and cost in rands, and what the assistant remembers.

`bin/demo --approve` shows an acting tool instead: "Remind me to call mom at 18:00" pauses the turn
(TurnPaused, with the approval card's one-line summary), the approval (POST .../approvals) streams
the rest of the same run, and GET /me/reminders lists the reminder; its cost adds both stretches.

`bin/demo --think` talks to an agent that thinks (extended thinking, `thinker`): its thinking streams
(ThinkingStarted, ThinkingDelta, ThinkingCompleted) before each tool call and answer, a second turn
replays the stored thinking with its signatures, and GET /sessions/{id}/messages?include=thinking
shows it with each message's reasoning tokens.

`bin/demo --pdf` sends a 12-page PDF (made with pypdf) the way a phone sends a big one: POST /uploads,
the file to S3 itself, then a turn that names the upload; the model reads it as a document block
(billed per page), a follow-up turn sends the same block again from the stored reference, and
GET /sessions/{id}/messages gives the PDF back with its name, pages and a presigned URL.

`bin/demo --search` asks an agent that searches the web (`researcher`) about today's news, with the
phone's approximate location: the answer streams with its sources (the Citations event), the search
is billed on top of the tokens (the final event's usage.web_searches and cost), a follow-up turn
sends the stored search results back unchanged, and GET /usage counts the searches.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal

import httpx

from chatcore.money.prices import TOKEN_COUNTS
from local.sample_images import b64, sunset_png
from local.stack import start_stack
from local.ports import free_port

DIM, BOLD, RESET = ("\033[2m", "\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "", "")



def stream_turn(client: httpx.Client, session_id: str, body: dict, *, path: str | None = None) -> dict:
    """POST a turn (or, with ``path``, a decision on a paused one) and print its events as they
    arrive; returns the final event (or the TurnPaused that ends a paused turn's stream)."""
    final: dict = {}
    with client.stream("POST", path or f"/sessions/{session_id}/turns", json=body) as r:
        if r.status_code != 200:
            r.read()
            raise SystemExit(f"turn refused: HTTP {r.status_code} {r.text}")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event in ("RunContent", "TeamRunContent"):
                    print(data.get("content") or "", end="", flush=True)
                elif event in ("ToolCallStarted", "TeamToolCallStarted"):
                    tool = data.get("tool") or {}
                    who = data.get("agent_name") or data.get("team_name") or ""
                    print(f"\n{DIM}[{who} calls {tool.get('tool_name')}({json.dumps(tool.get('tool_args'))})]{RESET}",
                          flush=True)
                elif event in ("ToolCallCompleted", "TeamToolCallCompleted"):
                    tool = data.get("tool") or {}
                    print(f"{DIM}[{tool.get('tool_name')} -> {str(tool.get('result'))[:120]}]{RESET}", flush=True)
                elif event == "ThinkingStarted":
                    print(f"\n{DIM}[thinking: ", end="", flush=True)
                elif event == "ThinkingDelta":
                    print(f"{DIM}{data.get('text')}", end="", flush=True)
                elif event == "ThinkingCompleted":
                    print(f"{' (partly redacted)' if data.get('redacted') else ''}]{RESET}", flush=True)
                elif event == "Citations":
                    for c in data.get("citations") or []:
                        print(f"\n{DIM}[source: {c.get('title')} <{c.get('url')}>]{RESET}", end="", flush=True)
                elif event == "MemoryUpdated":
                    print(f"\n{BOLD}[memory {data.get('action')}: {data.get('text')}]{RESET}", flush=True)
                elif event in ("TurnCompleted", "TurnFailed"):
                    final = {"event": event, **data}
                elif event == "TurnPaused":
                    final = {"event": event, **data}
                    for call in data["pending"]:
                        print(f"\n{BOLD}[approval needed: {call['summary']}]{RESET} "
                              f"{DIM}({call['tool']} {json.dumps(call['arguments'])}, id {call['tool_call_id']}){RESET}",
                              flush=True)
                elif event in ("RunStarted", "TeamRunStarted", "RunCompleted", "TeamRunCompleted", "RunError"):
                    print(f"\n{DIM}[{event} {data.get('agent_name') or data.get('team_name') or ''}]{RESET}",
                          flush=True)
    print()
    return final


def print_stored(database_url: str, session_id: str) -> None:
    import psycopg

    from chatcore.store import sessions

    with psycopg.connect(database_url, prepare_threshold=None) as conn:
        rows = sessions.stored_calls(conn, session_id)
    print(f"\n{BOLD}Stored messages of session {session_id}{RESET}")
    print(f"{'role':9} {'agent':10} {'in':>6} {'out':>5} {'c.read':>6} {'c.write':>7} {'cost USD':>14} {'cost ZAR':>14} {'bytes':>6}  run")
    keys = []
    for r in rows:
        print(f"{r['role']:9} {r['agent_name'] or '-':10} {r['input_tokens']:>6} {r['output_tokens']:>5} "
              f"{r['cache_read_tokens']:>6} {r['cache_write_tokens']:>7} {r['cost_usd']:>14.10f} {r['cost_in_rands']:>14.10f} "
              f"{r['bytes']:>6}  {r['status']}")
        for media in [*(r["message_parts"].get("images") or []), *(r["message_parts"].get("files") or [])]:
            ref = media.get("media_reference")
            if ref:
                keys.append(f"s3://{ref['bucket']}/{ref['storage_key']} ({ref['size']} bytes, sha256 {ref['content_hash'][:12]}…)")
            else:
                keys.append(f"inline {media.get('mime_type')} {media.get('id')}")
    total = {k: sum(r[k] for r in rows) for k in TOKEN_COUNTS}
    usd = sum((r["cost_usd"] for r in rows), Decimal(0))
    zar = sum((r["cost_in_rands"] for r in rows), Decimal(0))
    rate = next((r["fx_rate"] for r in rows if r["fx_rate"] is not None), None)
    print(f"\n{BOLD}Photos and PDFs in S3{RESET} (the rows keep only these references)")
    for k in keys:
        print(f"  {k}")
    print(f"\n{BOLD}Tokens{RESET}  input {total['input_tokens']}, output {total['output_tokens']}, "
          f"cache read {total['cache_read_tokens']}, cache write {total['cache_write_tokens']}")
    print(f"{BOLD}Cost{RESET}    USD {usd}  x  USD/ZAR {rate}  =  {BOLD}R {zar.quantize(Decimal('0.000001'))}{RESET}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.split("\n")[0])
    parser.add_argument("--team", help="run the turns with this team instead of the agent")
    parser.add_argument("--agent", default="assistant")
    parser.add_argument("--approve", action="store_true",
                        help="show a turn that pauses for the user's approval (set_reminder) and its approval")
    parser.add_argument("--think", action="store_true",
                        help="talk to an agent that thinks (thinker): its streamed, stored and replayed thinking")
    parser.add_argument("--search", action="store_true",
                        help="talk to an agent that searches the web (researcher): its sources, the search's cost")
    parser.add_argument("--pdf", action="store_true",
                        help="send a 12-page PDF through POST /uploads, ask about it twice, and list it")
    args = parser.parse_args(argv)
    stack = start_stack().apply()
    try:
        from chatcore.web.identity import unsigned_jwt
        from local.server import BackgroundServer

        server = BackgroundServer(free_port()).start()
        print(f"{BOLD}Chat API{RESET} on {server.url}; model: {stack.model_description}\n", flush=True)
        token = unsigned_jwt({"sub": "demo-user"})
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
            agent = "thinker" if args.think else "researcher" if args.search else args.agent
            target = {"team": args.team} if args.team else {"agent": agent}
            r = client.post("/sessions", json=target)
            if r.status_code != 201:
                raise SystemExit(f"could not create a session: HTTP {r.status_code} {r.text}")
            session_id = r.json()["id"]
            if args.approve:
                return _approve(client, session_id, stack.env["DATABASE_URL"], server)
            if args.think:
                return _think(client, session_id, stack.env["DATABASE_URL"], server)
            if args.search:
                return _search(client, session_id, stack.env["DATABASE_URL"], server)
            if args.pdf:
                return _pdf(client, session_id, stack.env["DATABASE_URL"], server)
            photo = sunset_png()
            print(f"{BOLD}Turn 1{RESET} (with a {len(photo)} byte PNG): ", flush=True)
            first = stream_turn(client, session_id, {
                "message": "Here is my photo of the sunset. What is 1250 * 0.15 + 99.99?",
                "images": [{"data": b64(photo), "mime_type": "image/png"}],
                "client_turn_id": "demo-turn-1",
            })
            print(f"{DIM}{first.get('event')}: {json.dumps({k: first.get(k) for k in ('usage', 'cost', 'error')})}{RESET}")
            print(f"\n{BOLD}Turn 2{RESET} (continues from the stored history, photo included): ", flush=True)
            second = stream_turn(client, session_id, {"message": "What colours were in the photo I sent?"})
            print(f"{DIM}{second.get('event')}: {json.dumps({k: second.get(k) for k in ('usage', 'cost', 'error')})}{RESET}")
            print(f"\n{BOLD}Turn 3{RESET} (the assistant writes to the user's memory): ", flush=True)
            third = stream_turn(client, session_id, {"message": "Remember that I am allergic to peanuts."})
            later = client.post("/sessions", json=target).json()["id"]
            print(f"\n{BOLD}A second session{RESET} ({later}) recalls what the first was told: ", flush=True)
            fourth = stream_turn(client, later, {"message": "What am I allergic to?"})
            memories = client.get("/me/memories").json()["items"]
        print_stored(stack.env["DATABASE_URL"], session_id)
        print(f"\n{BOLD}What the assistant remembers{RESET} (GET /me/memories)")
        for memory in memories:
            print(f"  {memory['text']}  {DIM}(id {memory['id']}, session {memory['session_id']}){RESET}")
        server.stop()
        ok = all(t.get("event") == "TurnCompleted" for t in (first, second, third, fourth)) and memories
        return 0 if ok else 1
    finally:
        from chatcore import db

        db.close_pool()
        stack.stop()


def _approve(client: httpx.Client, session_id: str, database_url: str, server) -> int:
    """--approve: a turn that pauses on set_reminder, the card an app shows, the approval, the reminder."""
    print(f"{BOLD}A turn that needs the user's approval{RESET}: ", flush=True)
    paused = stream_turn(client, session_id, {"message": "Remind me to call mom at 18:00"})
    if paused.get("event") != "TurnPaused":
        print(f"the turn did not pause: {paused.get('event')}")
        return 1
    print(f"{DIM}TurnPaused: run {paused['run_id']}, billed so far {json.dumps(paused.get('cost'))}, "
          f"expires {paused['expires_at']}{RESET}")
    card = client.get(f"/sessions/{session_id}").json()["turn_paused"]
    print(f"\n{BOLD}GET /sessions/{{id}}{RESET} shows the card to an app opened later: "
          f"{[c['summary'] for c in card['pending']]}")
    decisions = [{"tool_call_id": c["tool_call_id"], "approved": True} for c in paused["pending"]]
    print(f"\n{BOLD}The user taps Allow{RESET} (POST /sessions/{{id}}/turns/{{run_id}}/approvals "
          f"{json.dumps({'decisions': decisions})}): ", flush=True)
    done = stream_turn(client, session_id, {"decisions": decisions},
                       path=f"/sessions/{session_id}/turns/{paused['run_id']}/approvals")
    print(f"{DIM}{done.get('event')}: {json.dumps({k: done.get(k) for k in ('usage', 'cost', 'error')})}{RESET}")
    reminders = client.get("/me/reminders").json()["items"]
    print(f"\n{BOLD}GET /me/reminders{RESET}")
    for reminder in reminders:
        print(f"  {reminder['text']} at {reminder['due_at']} ({reminder['time_zone']})  {DIM}(run {reminder['run_id']}){RESET}")
    print_stored(database_url, session_id)
    server.stop()
    return 0 if done.get("event") == "TurnCompleted" and reminders else 1


def _think(client: httpx.Client, session_id: str, database_url: str, server) -> int:
    """--think: an agent that thinks before its tool call and its answer, twice; its thinking as stored."""
    turns = []
    for i, message in enumerate(["What is 1250 * 0.15 + 99.99?", "And what is 287.49 * 2?"], 1):
        print(f"{BOLD}Turn {i}{RESET}{' (the stored thinking is sent back, signatures unchanged)' if i > 1 else ''}: ",
              flush=True)
        turns.append(stream_turn(client, session_id, {"message": message}))
        print(f"{DIM}{turns[-1].get('event')}: {json.dumps({k: turns[-1].get(k) for k in ('usage', 'cost', 'error')})}{RESET}")
    items = client.get(f"/sessions/{session_id}/messages", params={"include": "thinking"}).json()["items"]
    print(f"\n{BOLD}GET /sessions/{{id}}/messages?include=thinking{RESET}")
    for m in (m for m in items if m["role"] == "assistant"):
        thoughts = [t["text"] if not t["redacted"] else "(redacted)" for t in m["thinking"] or []]
        print(f"  {DIM}reasoning {m['usage']['reasoning_tokens']} of {m['usage']['output_tokens']} output tokens, "
              f"USD {m['cost']['usd']}{RESET}  thought: {thoughts}")
    print_stored(database_url, session_id)
    server.stop()
    return 0 if all(t.get("event") == "TurnCompleted" for t in turns) else 1


def _search(client: httpx.Client, session_id: str, database_url: str, server) -> int:
    """--search: a question that needs the web, its sources, its searches' cost, and a follow-up."""
    where = {"country": "ZA", "city": "Cape Town", "timezone": "Africa/Johannesburg"}
    turns = []
    for i, body in enumerate([{"message": "Please search the web for today's load shedding schedule", "location": where},
                              {"message": "Which areas does it affect most?", "location": where}], 1):
        print(f"{BOLD}Turn {i}{RESET}{' (the stored search results are sent back unchanged)' if i > 1 else ''}: ",
              flush=True)
        turns.append(stream_turn(client, session_id, body))
        print(f"{DIM}{turns[-1].get('event')}: {json.dumps({k: turns[-1].get(k) for k in ('usage', 'cost', 'error')})}{RESET}")
    totals = client.get("/usage").json()["totals"]
    print(f"\n{BOLD}GET /usage{RESET}: {totals['web_searches']} web search(es), "
          f"USD {totals['web_search_cost']['usd']} of USD {totals['cost']['usd']} in all")
    print_stored(database_url, session_id)
    server.stop()
    return 0 if all(t.get("event") == "TurnCompleted" for t in turns) and totals["web_searches"] >= 1 else 1


def sample_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` blank pages (pypdf)."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "Lease agreement (demo)"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf(client: httpx.Client, session_id: str, database_url: str, server) -> int:
    """--pdf: a PDF through an upload, two turns that read it, and how GET /messages shows it."""
    lease = sample_pdf(12)
    upload = client.post("/uploads", json={"mime_type": "application/pdf", "size": len(lease)}).json()
    r = httpx.post(upload["url"], data=upload["fields"], files={"file": ("lease.pdf", lease, "application/pdf")})
    print(f"{BOLD}POST /uploads{RESET} then the {len(lease)} byte PDF straight to S3: HTTP {r.status_code}")
    turns = []
    for i, body in enumerate([{"message": "What does my lease say?",
                               "documents": [{"upload_id": upload["upload_id"], "name": "lease.pdf"}]},
                              {"message": "And when does it end?"}], 1):
        print(f"\n{BOLD}Turn {i}{RESET}{' (the stored PDF is sent again as the same document block)' if i > 1 else ''}: ",
              flush=True)
        turns.append(stream_turn(client, session_id, body))
        print(f"{DIM}{turns[-1].get('event')}: {json.dumps({k: turns[-1].get(k) for k in ('usage', 'cost', 'error')})}{RESET}")
    items = client.get(f"/sessions/{session_id}/messages").json()["items"]
    print(f"\n{BOLD}GET /sessions/{{id}}/messages{RESET}")
    for doc in (d for m in items for d in m["documents"]):
        print(f"  {doc['name']}: {doc['pages']} pages, {doc['size']} bytes, {DIM}{doc['url'][:80]}...{RESET}")
    print_stored(database_url, session_id)
    server.stop()
    return 0 if all(t.get("event") == "TurnCompleted" for t in turns) else 1


if __name__ == "__main__":
    sys.exit(main())
