"""Run a function of template.yaml with an event file, without Docker, the way `sam local invoke` would:
`bin/invoke FunctionLogicalId events/FILE.json`.

The function's CodeUri, Handler, Timeout, layers and environment come from template.yaml (Globals
merged). The local stack (``local.stack.start_stack``) stands in for AWS: its ``DATABASE_URL``,
moto S3 and model replace the template's intrinsics (``!Ref DbEndpoint``, the secrets...); ``Ref`` to
a parameter takes its default, or ``--parameter-overrides``; ``--env-vars`` takes sam's JSON format.
The function runs in its own process with Lambda's variables (``AWS_LAMBDA_FUNCTION_NAME``,
``LAMBDA_TASK_ROOT``, ``AWS_SAM_LOCAL``...), so it behaves as deployed: identity comes only from the
authorizer's claims, never from a dev token.

- Functions behind the Lambda Web Adapter (``AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap``): the
  invoker plays the adapter. It starts the Handler script (``run.sh``: uvicorn on ``AWS_LWA_PORT``),
  waits for the readiness check, turns the API Gateway REST proxy event into an HTTP request
  (method, ``path``, query strings, headers, body, ``isBase64Encoded``; the ``requestContext`` as
  JSON in ``x-amzn-request-context``, the Lambda context in ``x-amzn-lambda-context``, as the
  adapter does) and prints the response: buffered, the proxy response JSON API Gateway would get;
  ``AWS_LWA_INVOKE_MODE=response_stream``, a prelude line ``{"statusCode", "headers"}`` and then
  the body written as each chunk arrives.
- Plain handlers: ``module.function(event, context)`` with a Lambda-like context; the return value
  is printed as JSON.

Placeholders ``${NAME}`` in the event's strings are replaced before the call: by the environment
variable NAME when set, else ``${SESSION_ID}`` / ``${TEAM_SESSION_ID}`` by a new agent / team session
created for the event's caller (``POST /sessions`` through the function that serves it),
``${RUN_ID}`` by a turn run to its end in that session (``POST /sessions/{id}/turns``),
``${PAUSED_RUN_ID}`` / ``${TOOL_CALL_ID}`` by a turn of that session paused for the user's approval
("Remind me to call mom at 18:00") and its pending call, and
``${RESPONSE_URL}`` by a local server that records a custom resource's response. Function logs go
to stderr, the response to stdout. Exit status 1 when the function failed, answered HTTP >= 400 or a
custom resource reported FAILED.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlencode

import httpx
import yaml

from local.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "application/javascript")
# Variables of the developer's shell that must not leak into a function (it would not have them in AWS).
NOT_IN_LAMBDA = ("ALLOW_UNSIGNED_JWT", "VIRTUAL_ENV")


# ------------------------------------------------------------------ template


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, !If...) as their long forms."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]
    layer_dirs: list[Path]
    routes: list[tuple[str, str]]  # (METHOD, /resource/{path})

    @property
    def web_adapter(self) -> bool:
        return self.environment.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap"

    @property
    def streaming(self) -> bool:
        return str(self.environment.get("AWS_LWA_INVOKE_MODE", "buffered")).lower() == "response_stream"


def function_spec(template: dict, logical_id: str, root: Path = ROOT) -> FunctionSpec:
    resources = template.get("Resources", {})
    resource = resources.get(logical_id)
    if not resource or resource.get("Type") != "AWS::Serverless::Function":
        names = sorted(n for n, r in resources.items() if r.get("Type") == "AWS::Serverless::Function")
        raise SystemExit(f"invoke: no function {logical_id!r} in template.yaml; functions: {', '.join(names)}")
    glob = (template.get("Globals") or {}).get("Function") or {}
    props = {**glob, **(resource.get("Properties") or {})}
    env = {**((glob.get("Environment") or {}).get("Variables") or {}),
           **(((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})}
    layer_dirs = []
    for layer in props.get("Layers") or []:
        if isinstance(layer, dict) and "Ref" in layer:
            content = ((resources.get(layer["Ref"]) or {}).get("Properties") or {}).get("ContentUri")
            if isinstance(content, str):
                layer_dirs.append(root / content)
    routes = []
    for event in (props.get("Events") or {}).values():
        if event.get("Type") == "Api":
            p = event.get("Properties") or {}
            routes.append((str(p.get("Method", "")).upper(), str(p.get("Path", ""))))
    return FunctionSpec(logical_id=logical_id, code_dir=root / props["CodeUri"], handler=props["Handler"],
                        timeout=int(props.get("Timeout", 3)), memory=int(props.get("MemorySize", 128)),
                        environment=env, layer_dirs=layer_dirs, routes=routes)


def functions(template: dict) -> list[str]:
    return [n for n, r in template.get("Resources", {}).items() if r.get("Type") == "AWS::Serverless::Function"]


def function_for_route(template: dict, method: str, resource: str) -> str | None:
    for name in functions(template):
        if (method.upper(), resource) in function_spec(template, name).routes:
            return name
    return None


def resolve_environment(spec: FunctionSpec, template: dict, overrides: dict[str, str]) -> dict[str, str]:
    """Plain values as they are, ``Ref`` to a parameter as its override or default; other intrinsics
    (resources, secrets, conditions) have no local meaning and are left out: the stack supplies them."""
    parameters = template.get("Parameters") or {}
    out: dict[str, str] = {}
    for name, value in spec.environment.items():
        if isinstance(value, (str, int, float, bool)):
            out[name] = str(value)
        elif isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
            ref = value["Ref"]
            default = overrides.get(ref, parameters[ref].get("Default"))
            if default not in (None, ""):
                out[name] = str(default)
    return out


# ------------------------------------------------------------------ events


def substitute(value: Any, resolve: Callable[[str], str]) -> Any:
    """``${NAME}`` placeholders in every string of ``value`` replaced by ``resolve(NAME)``."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: resolve(m.group(1)), value)
    if isinstance(value, list):
        return [substitute(v, resolve) for v in value]
    if isinstance(value, dict):
        return {substitute(k, resolve): substitute(v, resolve) for k, v in value.items()}
    return value


def placeholders(value: Any) -> set[str]:
    found: set[str] = set()
    substitute(value, lambda name: found.add(name) or "")
    return found


def is_api_event(event: Any) -> bool:
    return isinstance(event, dict) and "httpMethod" in event and "requestContext" in event


def api_event(method: str, path: str, resource: str, claims: dict, body: Any = None,
              path_parameters: dict | None = None) -> dict:
    """A REST proxy event as API Gateway sends it after a Cognito authorizer (for helper calls)."""
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Accept": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Accept": ["application/json"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters, "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": method, "path": f"/prod{path}", "stage": "prod",
            "requestId": str(uuid.uuid4()), "accountId": "123456789012", "apiId": "local",
            "protocol": "HTTP/1.1", "identity": {"sourceIp": "127.0.0.1", "userAgent": "local-invoke"},
            "authorizer": {"claims": claims},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


# ------------------------------------------------------------------ results


@dataclass
class InvokeResult:
    function: str
    kind: str  # "buffered" | "stream" | "handler"
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (seconds since the request, bytes)
    payload: Any = None  # a plain handler's return value, or the proxy response of a buffered app
    error: str | None = None
    custom_resource_response: dict | None = None

    @property
    def ok(self) -> bool:
        if self.error:
            return False
        if self.custom_resource_response is not None and self.custom_resource_response.get("Status") != "SUCCESS":
            return False
        return self.status is None or self.status < 400


class _Capture:
    """A local stand-in for CloudFormation's pre-signed ResponseURL: records what is PUT to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    capture.bodies.append(json.loads(raw))
                except ValueError:
                    capture.bodies.append({"raw": raw.decode(errors="replace")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/cloudformation-response"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()



def _pump(stream: Any, sink: TextIO) -> None:
    for line in iter(stream.readline, b""):
        try:
            sink.write(line.decode(errors="replace"))
            sink.flush()
        except ValueError:  # the sink was closed (end of a test)
            return


# ------------------------------------------------------------------ running functions


class _WebAdapterApp:
    """A function's web app started from its Handler script, as the Lambda Web Adapter starts it."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log: TextIO):
        self.spec = spec
        self.port = free_port()
        env = {**env, "AWS_LWA_PORT": str(self.port)}
        self.process = subprocess.Popen(["bash", str(spec.code_dir / spec.handler)], cwd=spec.code_dir, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=_pump, args=(self.process.stdout, log), daemon=True).start()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.base, timeout=httpx.Timeout(spec.timeout, connect=10))
        self._wait_ready(env.get("AWS_LWA_READINESS_CHECK_PATH") or "/")

    def _wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.logical_id}: {self.spec.handler} exited with {self.process.returncode} "
                                   "before it was ready (see the log above)")
            try:
                if 100 <= self.client.get(path, timeout=2).status_code < 500:  # the adapter's default
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.spec.logical_id}: not ready on port {self.port} after 120 s")

    def request(self, event: dict, lambda_context: dict) -> httpx.Request:
        headers: dict[str, list[str]] = {}
        for k, v in (event.get("headers") or {}).items():
            headers[k.lower()] = [v]
        for k, vs in (event.get("multiValueHeaders") or {}).items():
            headers[k.lower()] = list(vs)
        for hop in ("content-length", "transfer-encoding", "connection", "host"):
            headers.pop(hop, None)
        header_list = [(k, v) for k, vs in headers.items() for v in vs]
        compact = {"separators": (",", ":")}
        header_list.append(("x-amzn-request-context", json.dumps(event.get("requestContext") or {}, **compact)))
        header_list.append(("x-amzn-lambda-context", json.dumps(lambda_context, **compact)))
        multi = event.get("multiValueQueryStringParameters")
        single = event.get("queryStringParameters")
        query = urlencode(multi, doseq=True) if multi else urlencode(single or {})
        body = event.get("body")
        content = b"" if body is None else (base64.b64decode(body) if event.get("isBase64Encoded") else body.encode())
        url = event.get("path") or "/"
        return self.client.build_request(event.get("httpMethod", "GET"), url + (f"?{query}" if query else ""),
                                         headers=header_list, content=content)

    def invoke(self, event: dict, lambda_context: dict, out: BinaryIO | None) -> InvokeResult:
        result = InvokeResult(self.spec.logical_id, "stream" if self.spec.streaming else "buffered")
        started = time.monotonic()
        response = self.client.send(self.request(event, lambda_context), stream=True)
        try:
            result.status = response.status_code
            result.headers = {k: v for k, v in response.headers.items() if k.lower() != "transfer-encoding"}
            if self.spec.streaming:
                # Lambda's streaming payload: a JSON prelude, then the body as it is produced.
                prelude = {"statusCode": result.status, "headers": result.headers, "cookies": []}
                if out is not None:
                    out.write(json.dumps(prelude).encode() + b"\n\n")
                    out.flush()
                for chunk in response.iter_raw():
                    result.chunks.append((time.monotonic() - started, chunk))
                    if out is not None:
                        out.write(chunk)
                        out.flush()
                result.body = b"".join(c for _, c in result.chunks)
                result.payload = prelude
            else:
                result.body = response.read()
                content_type = response.headers.get("content-type", "")
                text = content_type.startswith(TEXT_TYPES) or content_type.endswith("+json")
                multi: dict[str, list[str]] = {}
                for k, v in response.headers.multi_items():
                    if k.lower() != "transfer-encoding":
                        multi.setdefault(k, []).append(v)
                result.payload = {
                    "statusCode": result.status,
                    "headers": {k: vs[-1] for k, vs in multi.items()},
                    "multiValueHeaders": multi,
                    "body": result.body.decode() if text else base64.b64encode(result.body).decode(),
                    "isBase64Encoded": not text,
                }
                if out is not None:
                    out.write(json.dumps(result.payload, indent=2).encode() + b"\n")
                    out.flush()
        finally:
            response.close()
        return result

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _run_handler_main() -> None:
    """In the function's own process: import the handler, call it, write the outcome to a file."""
    job = json.loads(sys.stdin.read())
    sys.path[:0] = [job["code_dir"], *job["layer_dirs"]]
    module_name, _, function_name = job["handler"].rpartition(".")
    deadline = time.monotonic() + job["timeout"]

    class Context:
        function_name = job["function_name"]
        function_version = "$LATEST"
        invoked_function_arn = (f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'us-east-1')}:123456789012:"
                                f"function:{function_name}")
        memory_limit_in_mb = job["memory"]
        aws_request_id = job["request_id"]
        log_group_name = f"/aws/lambda/{function_name}"
        log_stream_name = "local/[$LATEST]invoke"
        identity = None
        client_context = None
        tenant_id = None

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return max(0, int((deadline - time.monotonic()) * 1000))

    try:
        import importlib

        handler = getattr(importlib.import_module(module_name), function_name)
        outcome: dict[str, Any] = {"payload": handler(job["event"], Context())}
    except Exception as e:  # noqa: BLE001 - reported as Lambda reports it
        import traceback

        outcome = {"error": {"errorMessage": str(e), "errorType": e.__class__.__name__,
                             "stackTrace": traceback.format_exc().splitlines()}}
    Path(job["result_path"]).write_text(json.dumps(outcome, default=str))


class Invoker:
    """Invokes the template's functions against a running local stack; web apps stay warm between calls."""

    def __init__(self, stack_env: dict[str, str], *, template_path: Path = TEMPLATE,
                 env_vars: dict[str, dict[str, str]] | None = None, parameter_overrides: dict[str, str] | None = None,
                 out: BinaryIO | None = None, log: TextIO | None = None):
        self.template = load_template(template_path)
        self.stack_env = stack_env
        self.env_vars = env_vars or {}
        self.parameter_overrides = parameter_overrides or {}
        self.out = out
        self.log = log or sys.stderr
        self._apps: dict[str, _WebAdapterApp] = {}
        self._capture: _Capture | None = None

    # -- environment

    def function_environment(self, spec: FunctionSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in NOT_IN_LAMBDA}
        env.update(resolve_environment(spec, self.template, self.parameter_overrides))
        env.update({k: v for k, v in self.stack_env.items() if k not in NOT_IN_LAMBDA})
        env.update(self.env_vars.get("Parameters") or {})
        env.update(self.env_vars.get(spec.logical_id) or {})
        python_bin = str(Path(sys.executable).parent)
        env.update({
            "PATH": f"{python_bin}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([*(str(d) for d in spec.layer_dirs), str(ROOT)]),
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_SAM_LOCAL": "true",
            "_HANDLER": spec.handler,
        })
        for name in NOT_IN_LAMBDA:
            env.pop(name, None)
        return env

    # -- placeholders

    def _resolver(self, event: dict) -> Callable[[str], str]:
        cache: dict[str, str] = {}

        def resolve(name: str) -> str:
            if name in os.environ:
                return os.environ[name]
            if name not in cache:
                if name in ("SESSION_ID", "TEAM_SESSION_ID"):
                    cache[name] = self.create_session(event, team=name == "TEAM_SESSION_ID")
                elif name == "RUN_ID":
                    cache[name] = self.run_turn(event, resolve("SESSION_ID"))
                elif name in ("PAUSED_RUN_ID", "TOOL_CALL_ID"):
                    cache["PAUSED_RUN_ID"], cache["TOOL_CALL_ID"] = self.pause_turn(event, resolve("SESSION_ID"))
                elif name == "RESPONSE_URL":
                    if self._capture is None:
                        self._capture = _Capture()
                    cache[name] = self._capture.url
                else:
                    raise SystemExit(f"invoke: the event uses ${{{name}}}: set the environment variable {name}")
            return cache[name]

        return resolve

    def create_session(self, event: dict, *, team: bool) -> str:
        """A new session for the event's caller, created through the function serving POST /sessions."""
        claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
        function = function_for_route(self.template, "POST", "/sessions")
        if function is None:
            raise SystemExit("invoke: no function serves POST /sessions in template.yaml")
        body = {"team": "planner"} if team else {"agent": "assistant"}
        result = self._invoke(function, api_event("POST", "/sessions", "/sessions", claims, body), quiet=True)
        if result.status != 201:
            raise RuntimeError(f"could not create a session: HTTP {result.status} {result.body[:500]!r}")
        session_id = json.loads(result.body)["id"]
        print(f"invoke: created {'team' if team else 'agent'} session {session_id} for sub={claims.get('sub')}",
              file=self.log, flush=True)
        return session_id

    def run_turn(self, event: dict, session_id: str) -> str:
        """The run id of a turn of ``session_id`` run for the event's caller (through the function
        serving POST /sessions/{id}/turns), to its end."""
        claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
        function = function_for_route(self.template, "POST", "/sessions/{id}/turns")
        if function is None:
            raise SystemExit("invoke: no function serves POST /sessions/{id}/turns in template.yaml")
        turn = api_event("POST", f"/sessions/{session_id}/turns", "/sessions/{id}/turns", claims,
                         {"message": "Say hello in three words."}, path_parameters={"id": session_id})
        result = self._invoke(function, turn, quiet=True)
        run_id = {k.lower(): v for k, v in (result.headers or {}).items()}.get("x-run-id")
        if result.status != 200 or not run_id:
            raise RuntimeError(f"could not run a turn: HTTP {result.status} {result.body[:500]!r}")
        print(f"invoke: ran turn {run_id} in session {session_id}", file=self.log, flush=True)
        return run_id

    def pause_turn(self, event: dict, session_id: str) -> tuple[str, str]:
        """A turn of ``session_id`` paused for the user's approval (its run id and its pending call's
        id), run for the event's caller through the function serving POST /sessions/{id}/turns."""
        from chatcore.wire import sse

        claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("claims") or {}
        function = function_for_route(self.template, "POST", "/sessions/{id}/turns")
        if function is None:
            raise SystemExit("invoke: no function serves POST /sessions/{id}/turns in template.yaml")
        turn = api_event("POST", f"/sessions/{session_id}/turns", "/sessions/{id}/turns", claims,
                         {"message": "Remind me to call mom at 18:00"}, path_parameters={"id": session_id})
        result = self._invoke(function, turn, quiet=True)
        events = sse.parse(result.body.decode() if isinstance(result.body, bytes) else result.body)
        if result.status != 200 or not events or events[-1]["event"] != "TurnPaused":
            raise RuntimeError(f"could not pause a turn: HTTP {result.status} {result.body[-500:]!r}")
        paused = events[-1]["data"]
        print(f"invoke: paused turn {paused['run_id']} in session {session_id}", file=self.log, flush=True)
        return paused["run_id"], paused["pending"][0]["tool_call_id"]

    # -- invocation

    def invoke(self, function: str, event: Any) -> InvokeResult:
        """Invoke ``function`` with ``event`` (placeholders resolved first)."""
        if isinstance(event, (dict, list)) and placeholders(event):
            event = substitute(event, self._resolver(event if isinstance(event, dict) else {}))
        return self._invoke(function, event)

    def _invoke(self, function: str, event: Any, *, quiet: bool = False) -> InvokeResult:
        spec = function_spec(self.template, function)
        out = None if quiet else self.out
        request_id = str(uuid.uuid4())
        if spec.web_adapter:
            if not is_api_event(event):
                raise SystemExit(f"invoke: {function} runs behind the Lambda Web Adapter: give it an API Gateway "
                                 "REST proxy event (httpMethod, path, requestContext...)")
            route = (event["httpMethod"].upper(), event.get("resource", ""))
            if spec.routes and route not in spec.routes:
                print(f"invoke: warning: {route[0]} {route[1]} is not a route of {function} in template.yaml",
                      file=self.log, flush=True)
            if function not in self._apps:
                self._apps[function] = _WebAdapterApp(spec, self.function_environment(spec), self.log)
            lambda_context = {
                "request_id": request_id, "deadline": int((time.time() + spec.timeout) * 1000),
                "invoked_function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
                "xray_trace_id": None, "client_context": None, "identity": None,
                "env_config": {"function_name": function, "memory": spec.memory, "version": "$LATEST",
                               "log_stream": "local/[$LATEST]invoke", "log_group": f"/aws/lambda/{function}"},
            }
            return self._apps[function].invoke(event, lambda_context, out)
        return self._invoke_handler(spec, event, request_id, out)

    def _invoke_handler(self, spec: FunctionSpec, event: Any, request_id: str, out: BinaryIO | None) -> InvokeResult:
        import tempfile

        result = InvokeResult(spec.logical_id, "handler")
        captured_before = len(self._capture.bodies) if self._capture else 0
        with tempfile.TemporaryDirectory() as tmp:
            job = {"code_dir": str(spec.code_dir), "layer_dirs": [str(d) for d in spec.layer_dirs],
                   "handler": spec.handler, "event": event, "timeout": spec.timeout, "memory": spec.memory,
                   "function_name": spec.logical_id, "request_id": request_id,
                   "result_path": str(Path(tmp) / "result.json")}
            process = subprocess.Popen(
                [sys.executable, "-c", "from local.invoke import _run_handler_main; _run_handler_main()"],
                cwd=spec.code_dir, env=self.function_environment(spec), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            pump = threading.Thread(target=_pump, args=(process.stdout, self.log), daemon=True)
            pump.start()
            process.stdin.write(json.dumps(job).encode())
            process.stdin.close()
            try:
                process.wait(timeout=spec.timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                result.error = f"Task timed out after {spec.timeout} seconds"
            pump.join(timeout=5)
            outcome_path = Path(tmp) / "result.json"
            if result.error is None:
                if not outcome_path.exists():
                    result.error = f"the function's process exited with {process.returncode} without a result"
                else:
                    outcome = json.loads(outcome_path.read_text())
                    if "error" in outcome:
                        result.payload = outcome["error"]
                        result.error = f"{outcome['error']['errorType']}: {outcome['error']['errorMessage']}"
                    else:
                        result.payload = outcome["payload"]
        if self._capture and len(self._capture.bodies) > captured_before:
            result.custom_resource_response = self._capture.bodies[-1]
            print(f"invoke: CloudFormation would receive: {json.dumps(result.custom_resource_response)}",
                  file=self.log, flush=True)
        elif isinstance(event, dict) and "ResponseURL" in event and "RequestType" in event:
            result.error = result.error or "the custom resource sent no response to its ResponseURL"
        if out is not None:
            out.write(json.dumps(result.payload if result.payload is not None else {"errorMessage": result.error},
                                 indent=2, default=str).encode() + b"\n")
            out.flush()
        return result

    def close(self) -> None:
        for app in self._apps.values():
            app.close()
        self._apps.clear()
        if self._capture is not None:
            self._capture.close()
            self._capture = None

    def __enter__(self) -> "Invoker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/invoke", description=__doc__.split("\n")[0])
    parser.add_argument("function", help="a function's logical id in template.yaml, e.g. ChatFunction")
    parser.add_argument("event", type=Path, help="an event file, e.g. events/chat-turn.json")
    parser.add_argument("--env-vars", type=Path,
                        help='JSON as for sam: {"ChatFunction": {"VAR": "value"}, "Parameters": {...}}')
    parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="template parameters for Ref in environment variables")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())
    env_vars = json.loads(args.env_vars.read_text()) if args.env_vars else None
    overrides = dict(kv.split("=", 1) for kv in args.parameter_overrides)
    from local.stack import start_stack

    stack = start_stack()
    try:
        with Invoker(stack.env, template_path=args.template, env_vars=env_vars, parameter_overrides=overrides,
                     out=sys.stdout.buffer) as invoker:
            result = invoker.invoke(args.function, event)
        sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        if result.error:
            print(f"invoke: {args.function} failed: {result.error}", file=sys.stderr)
        elif not result.ok:
            print(f"invoke: {args.function} answered HTTP {result.status}" if result.status
                  else f"invoke: {args.function}: the custom resource reported FAILED", file=sys.stderr)
        return 0 if result.ok else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
