"""A local stand-in for the Anthropic Messages API (NOT the real Claude).

Standard library only. It speaks the real Anthropic wire protocol, streaming included, so the
real ``anthropic`` SDK and agno's ``agno.models.anthropic.Claude`` work against it unchanged:

    client = anthropic.Anthropic(api_key="anything", base_url=server.url)
    Claude(id="claude-sonnet-4-5", api_key="anything", client_params={"base_url": server.url})

(or set ``ANTHROPIC_BASE_URL``). Used by the tests, and by the demo when no ANTHROPIC_API_KEY
is set. Run it on its own with ``python -m local.anthropic_standin --port 8787``.

Endpoints
---------
``POST /v1/messages`` (query string ignored, so the SDK's ``?beta=true`` works; any x-api-key)
    ``"stream": true`` answers with server-sent events exactly as Anthropic sends them:
    ``message_start``, ``ping``, then per content block ``content_block_start`` /
    ``content_block_delta`` (``text_delta`` in chunks of about three words, or
    ``input_json_delta`` chunks for ``tool_use``) / ``content_block_stop``, then
    ``message_delta`` (stop_reason and usage) and ``message_stop``. Otherwise the whole message
    is returned as JSON.
``POST /v1/messages/count_tokens`` -> ``{"input_tokens": N}`` (same formula as below).
``POST /_standin/script``  body: a step or a list of steps, appended to a FIFO queue.
``POST /_standin/reset``   clear the queue and the recorded requests.
``GET  /_standin/requests`` every ``/v1/messages`` request received, in order:
    ``{"body": <request json>, "headers": {...selected...},
    "response": {"usage": {...}, "content": [...], "stop_reason": ...} | {"error": {...}}}``.
``GET  /_standin/health``  -> ``{"ok": true, "server": "anthropic-standin"}``.

Script steps (each ``/v1/messages`` request consumes the next step; without one it falls
back to the default behaviour below)
    ``{"text": "..."}``                                  a text reply (stop_reason end_turn)
    ``{"tool_use": {"name": "...", "input": {...}}}``    a tool call (stop_reason tool_use);
        an optional ``"id"`` inside, and an optional ``"text"`` beside it (sent first)
    ``{"error": {"status": 529, "type": "overloaded_error", "message": "..."}}``
        that HTTP status with Anthropic's error body ``{"type": "error", "error": {...}}``
        and a ``request-id`` header
    ``{"stream_error_after_chars": N, "text": "..."}``  streams the first N characters of the
        text, then an SSE ``event: error`` (overloaded_error) and closes the stream. A
        non-streaming request gets an HTTP 529 overloaded_error instead.
    Any step may add ``"usage": {...}`` (overrides the computed fields) and ``"delay_ms"``
    (sleep before each streamed delta).

NOTE: the anthropic SDK retries 408/409/429/5xx (529 included) and connection errors, twice by
default (``max_retries=2``). Every attempt is a new request and consumes a new step, exactly
as a real retry would hit the real API again: script one error step per attempt, or build the
client with ``max_retries=0``.

Default behaviour (deterministic, from the request)
    * tools offered and the last message is plain user text (not a tool_result):
        - ``delegate_task_to_member`` offered -> calls it with ``member_id`` = the first member
          id found in the system prompt (agno's ``<member id="...">`` listing, or a line like
          ``ID: xxx``; else ``"unknown"``) and ``task`` = the user text;
        - else ``calculator`` offered and the user text holds an arithmetic expression ->
          calls ``calculator`` with ``{"expression": ...}``;
        - else a text reply.
    * text reply: ``Stand-in model reply to: <first 60 chars of the last user text>. I can see
      N image(s) in this conversation (total bytes B).``; when the last message carries tool
      results: ``The tool returned: <first 200 chars of the results>``.

Usage (deterministic, non-zero, distinct between the requests of one conversation)
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    input_tokens                = 10 + len(canonical) // 50
    cache_creation_input_tokens = 3 + len(messages)
    cache_read_input_tokens     = 7 * len(messages)
    output_tokens               = 1 + words of the reply text
                                  + sum(len(json.dumps(tool input)) // 10 + 1 per tool_use)
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import copy
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SERVER_NAME = "anthropic-standin"
DEFAULT_MODEL = "claude-standin"
_RECORDED_HEADERS = (
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "user-agent",
    "x-stainless-retry-count",
    "x-stainless-timeout",
)
_SECRET_HEADERS = ("x-api-key", "authorization")


# --------------------------------------------------------------------------- helpers


def _hex(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


def _error_body(err_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": err_type, "message": message}}


def _text_of(content: Any) -> str:
    """Text of a message content (a string or a list of blocks); tool results excluded."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _tool_results(content: Any) -> list[dict]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _tool_result_text(block: dict) -> str:
    inner = block.get("content")
    if isinstance(inner, str):
        return inner
    if isinstance(inner, list):
        return "\n".join(
            b.get("text", "") for b in inner if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _iter_blocks(content: Any):
    """All blocks of a content, tool_result contents included."""
    if not isinstance(content, list):
        return
    for b in content:
        if not isinstance(b, dict):
            continue
        yield b
        if b.get("type") == "tool_result":
            yield from _iter_blocks(b.get("content"))


def _count_images(messages: list) -> tuple[int, int]:
    count = 0
    total = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        for b in _iter_blocks(m.get("content")):
            if b.get("type") != "image":
                continue
            src = b.get("source") or {}
            if src.get("type") == "base64":
                count += 1
                data = src.get("data") or ""
                try:
                    total += len(base64.b64decode(data))
                except (binascii.Error, ValueError):
                    total += len(data) * 3 // 4
            elif src.get("type") == "url":
                count += 1
    return count, total


def _system_text(system: Any) -> str:
    return _text_of(system) if system is not None else ""


def _find_member_id(system: str) -> str:
    m = re.search(r'<member\s+id="([^"]+)"', system)
    if m:
        return m.group(1)
    m = re.search(r"\bID:\s*([^\s<>\"']+)", system)
    if m:
        return m.group(1)
    return "unknown"


_EXPR_CANDIDATE = re.compile(r"[\d(][\d\s+\-*/().^]*")
_HAS_OPERATION = re.compile(r"\d\s*\)*\s*[-+*/^]\s*\(*\s*[-+]?\s*\.?\d")


def _find_expression(text: str) -> str | None:
    for m in _EXPR_CANDIDATE.finditer(text):
        expr = m.group(0).strip().rstrip("+-*/^. (").strip()
        if _HAS_OPERATION.search(expr):
            # drop unmatched closing parentheses at the end
            while expr.endswith(")") and expr.count(")") > expr.count("("):
                expr = expr[:-1].rstrip()
            return expr
    return None


def _chunk_text(text: str, words: int = 3) -> list[str]:
    """Split text into chunks of about ``words`` words; "".join(chunks) == text."""
    if not text:
        return []
    tokens = re.findall(r"\s*\S+\s*|\s+", text)
    chunks = ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    return chunks or [text]


def _chunk_json(s: str, size: int = 12) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


def compute_usage(body: dict, content: list[dict]) -> dict:
    """The deterministic usage of a request and the content produced for it."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    messages = body.get("messages") or []
    n = len(messages) if isinstance(messages, list) else 0
    output = 1
    for block in content:
        if block.get("type") == "text":
            output += len(block.get("text", "").split())
        elif block.get("type") == "tool_use":
            output += len(json.dumps(block.get("input", {}))) // 10 + 1
    return {
        "input_tokens": 10 + len(canonical) // 50,
        "cache_creation_input_tokens": 3 + n,
        "cache_read_input_tokens": 7 * n,
        "output_tokens": output,
    }


def _tool_use_block(name: str, tool_input: dict, block_id: str | None = None) -> dict:
    return {"type": "tool_use", "id": block_id or "toolu_" + _hex(24), "name": name, "input": tool_input}


def default_content(body: dict) -> list[dict]:
    """The default (unscripted) reply content for a request."""
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    tools = body.get("tools") or []
    tool_names = {t.get("name") for t in tools if isinstance(t, dict)}
    last_content = last.get("content")
    results = _tool_results(last_content) if last.get("role") == "user" else []

    if results:
        text = "\n".join(_tool_result_text(r) for r in results)
        return [{"type": "text", "text": f"The tool returned: {text[:200]}"}]

    user_text = _text_of(last_content) if last.get("role") == "user" else ""
    if tool_names and last.get("role") == "user":
        if "delegate_task_to_member" in tool_names:
            member_id = _find_member_id(_system_text(body.get("system")))
            return [
                _tool_use_block("delegate_task_to_member", {"member_id": member_id, "task": user_text})
            ]
        if "calculator" in tool_names:
            expr = _find_expression(user_text)
            if expr:
                return [_tool_use_block("calculator", {"expression": expr})]

    n_images, n_bytes = _count_images(messages)
    snippet = user_text[:60]
    return [
        {
            "type": "text",
            "text": f"Stand-in model reply to: {snippet}. I can see {n_images} image(s) "
            f"in this conversation (total bytes {n_bytes}).",
        }
    ]


# --------------------------------------------------------------------------- state


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: collections.deque[dict] = collections.deque()
        self.recorded: list[dict] = []
        self.connections: set[socket.socket] = set()

    def script(self, steps: Any) -> int:
        if isinstance(steps, dict):
            steps = [steps]
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise ValueError("a script is a step object or a list of step objects")
        with self.lock:
            self.queue.extend(copy.deepcopy(steps))
            return len(self.queue)

    def next_step(self) -> dict | None:
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def reset(self) -> None:
        with self.lock:
            self.queue.clear()
            self.recorded.clear()

    def record(self, entry: dict) -> None:
        with self.lock:
            self.recorded.append(entry)

    def requests(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.recorded)


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AnthropicStandin/1.0"
    state: _State  # set on the subclass made per server

    # quiet
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        # Each SSE event is its own small write: without TCP_NODELAY, Nagle's algorithm waits for
        # the client's delayed ACK and every model call takes ~40 ms longer than it should.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.state.lock:
                self.state.connections.discard(self.connection)

    # ---- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, request_id: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if request_id:
            self.send_header("request-id", request_id)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, err_type: str, message: str, request_id: str | None = None) -> None:
        self._send_json(status, _error_body(err_type, message), request_id or "req_" + _hex(24))

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _selected_headers(self) -> dict:
        out = {k: self.headers[k] for k in _RECORDED_HEADERS if self.headers.get(k) is not None}
        for k in _SECRET_HEADERS:
            if self.headers.get(k) is not None:
                out[k] = "***"
        return out

    # ---- routes

    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        if path == "/_standin/health":
            self._send_json(200, {"ok": True, "server": SERVER_NAME})
        elif path == "/_standin/requests":
            self._send_json(200, self.state.requests())
        else:
            self._send_error(404, "not_found_error", f"Not found: {path}")

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        raw = self._read_body()
        if path == "/v1/messages":
            self._messages(raw)
        elif path == "/v1/messages/count_tokens":
            body = self._parse(raw)
            if body is None:
                return
            self._send_json(200, {"input_tokens": compute_usage(body, [])["input_tokens"]})
        elif path == "/_standin/script":
            body = self._parse(raw, require_object=False)
            if body is None:
                return
            try:
                queued = self.state.script(body)
            except ValueError as exc:
                self._send_error(400, "invalid_request_error", str(exc))
                return
            self._send_json(200, {"ok": True, "queued": queued})
        elif path == "/_standin/reset":
            self.state.reset()
            self._send_json(200, {"ok": True})
        else:
            self._send_error(404, "not_found_error", f"Not found: {path}")

    def _parse(self, raw: bytes, require_object: bool = True) -> Any:
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._send_error(400, "invalid_request_error", f"Invalid JSON body: {exc}")
            return None
        if require_object and not isinstance(body, dict):
            self._send_error(400, "invalid_request_error", "The request body must be a JSON object.")
            return None
        return body

    # ---- the Messages API

    def _messages(self, raw: bytes) -> None:
        request_id = "req_" + _hex(24)
        headers = self._selected_headers()
        try:
            body = json.loads(raw.decode("utf-8"))
            problem = None
            if not isinstance(body, dict):
                problem = "The request body must be a JSON object."
            elif not isinstance(body.get("messages"), list):
                problem = "messages: Field required"
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            body, problem = None, f"Invalid JSON body: {exc}"
        if problem:
            err = {"type": "invalid_request_error", "message": problem}
            self.state.record(
                {
                    "body": body if body is not None else None,
                    "raw": raw[:1000].decode("utf-8", "replace") if body is None else None,
                    "headers": headers,
                    "response": {"status": 400, "error": err},
                }
            )
            self._send_error(400, err["type"], err["message"], request_id)
            return

        step = self.state.next_step() or {}
        stream = bool(body.get("stream"))
        entry: dict = {"body": body, "headers": headers, "response": None}
        self.state.record(entry)  # the dict is filled in below, under the lock

        if "error" in step:
            spec = step["error"] or {}
            status = int(spec.get("status", 500))
            err = {
                "type": spec.get("type", "api_error"),
                "message": spec.get("message", "Scripted stand-in error"),
            }
            self._fill(entry, {"status": status, "error": err})
            self._send_error(status, err["type"], err["message"], request_id)
            return

        if "stream_error_after_chars" in step and not stream:
            err = {"type": "overloaded_error", "message": step.get("message", "Overloaded")}
            self._fill(entry, {"status": 529, "error": err})
            self._send_error(529, err["type"], err["message"], request_id)
            return

        content = self._content_for(step, body)
        usage = compute_usage(body, content)
        usage.update(step.get("usage") or {})
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        message = {
            "id": "msg_" + _hex(24),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or DEFAULT_MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

        if not stream:
            self._fill(entry, {"usage": usage, "content": content, "stop_reason": stop_reason})
            self._send_json(200, message, request_id)
            return

        delay = float(step.get("delay_ms") or 0) / 1000.0
        if "stream_error_after_chars" in step:
            limit = int(step["stream_error_after_chars"])
            text = str(step.get("text", ""))[:limit]
            err = {"type": "overloaded_error", "message": step.get("message", "Overloaded")}
            self._fill(entry, {"status": 200, "error": err, "partial_text": text, "usage": usage})
            self._stream(message, [{"type": "text", "text": text}], delay, request_id, error=err)
            return

        self._fill(entry, {"usage": usage, "content": content, "stop_reason": stop_reason})
        self._stream(message, content, delay, request_id)

    def _fill(self, entry: dict, response: dict) -> None:
        with self.state.lock:
            entry["response"] = copy.deepcopy(response)

    @staticmethod
    def _content_for(step: dict, body: dict) -> list[dict]:
        if "tool_use" in step:
            spec = step["tool_use"] or {}
            blocks = []
            if step.get("text"):
                blocks.append({"type": "text", "text": str(step["text"])})
            blocks.append(_tool_use_block(spec.get("name", "tool"), spec.get("input") or {}, spec.get("id")))
            return blocks
        if "text" in step:
            return [{"type": "text", "text": str(step["text"])}]
        return default_content(body)

    def _stream(
        self,
        message: dict,
        content: list[dict],
        delay: float,
        request_id: str,
        error: dict | None = None,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", request_id)
        if error:
            self.send_header("Connection", "close")
        self.end_headers()

        def send(event: str, data: dict) -> None:
            payload = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def pause() -> None:
            if delay:
                time.sleep(delay)

        usage = message["usage"]
        start_message = dict(message, content=[], stop_reason=None, stop_sequence=None)
        start_message["usage"] = dict(usage, output_tokens=1)
        try:
            send("message_start", {"type": "message_start", "message": start_message})
            send("ping", {"type": "ping"})
            for index, block in enumerate(content):
                if block["type"] == "text":
                    send(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                    )
                    for chunk in _chunk_text(block["text"]):
                        pause()
                        send(
                            "content_block_delta",
                            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}},
                        )
                else:
                    start_block = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                    send(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start_block},
                    )
                    encoded = json.dumps(block["input"], ensure_ascii=False)
                    for chunk in _chunk_json(encoded):
                        pause()
                        send(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": chunk},
                            },
                        )
                if error:
                    send("error", {"type": "error", "error": error})
                    self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                send("content_block_stop", {"type": "content_block_stop", "index": index})
            send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": dict(usage),
                },
            )
            send("message_stop", {"type": "message_stop"})
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


# --------------------------------------------------------------------------- Python API


class StandinServer:
    """The stand-in server, run in a daemon thread.

    >>> with StandinServer() as server:          # port 0: a free port
    ...     server.script([{"text": "hello"}])
    ...     client = anthropic.Anthropic(api_key="x", base_url=server.url)
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._state = _State()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("StandinServer is not started")
        return f"http://{self.host}:{self.port}"

    def _bind(self) -> _Server:
        if self._httpd is None:
            handler = type("StandinHandler", (_Handler,), {"state": self._state})
            self._httpd = _Server((self.host, self.port), handler)
            self.port = self._httpd.server_address[1]
        return self._httpd

    def start(self) -> "StandinServer":
        if self._thread is not None:
            return self
        self._bind()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="anthropic-standin", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI)."""
        self._bind().serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
        httpd.server_close()
        with self._state.lock:
            connections = list(self._state.connections)
        for conn in connections:  # idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def script(self, steps: list[dict] | dict) -> None:
        """Append steps to the queue; each /v1/messages request consumes one."""
        self._state.script(steps)

    def reset(self) -> None:
        """Clear the queue and the recorded requests."""
        self._state.reset()

    def requests(self) -> list[dict]:
        """A copy of the recorded /v1/messages requests, in order."""
        return self._state.requests()

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Anthropic Messages API stand-in (NOT the real Claude).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args(argv)
    server = StandinServer(port=args.port, host=args.host)
    server._bind()
    print(f"Anthropic stand-in server (NOT the real Claude) listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server._httpd is not None:
            server._httpd.server_close()


if __name__ == "__main__":
    main()
