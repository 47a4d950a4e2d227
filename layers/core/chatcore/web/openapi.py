"""What the OpenAPI document says of every route, whichever function serves it: readable operation
ids, the servers, the Problem schema and the problem responses every operation can get (from the
API, or from API Gateway itself: see ``GatewayResponses`` in template.yaml).

Plain dictionaries, no FastAPI: the chat and events functions describe their Starlette routes with
it too, and ``chatcore.web.fastapi_app`` completes the combined document with ``complete``.
"""

from __future__ import annotations

import copy

from chatcore.web.app import PROBLEM

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_CONTENT = {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}
RETRY_AFTER = {"Retry-After": {"description": ("seconds after which the same request may succeed (a dependency "
                                               "that is down: database-unavailable, storage-unavailable; a "
                                               "limit that frees up: rate-limited)"),
                               "schema": {"type": "integer", "minimum": 0}}}

# Where the API is: deployed (the stack's ApiUrl output), and `bin/serve` on this machine.
LOCAL_PORT = 8000  # bin/serve's default --port
SERVERS = [
    {"url": "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}",
     "description": "the deployed API (the ApiUrl output of the stack)",
     "variables": {
         "apiId": {"default": "your-api-id", "description": "the REST API's id (the first label of ApiUrl)"},
         "region": {"default": "af-south-1", "description": "the AWS region the stack is deployed in"},
         "stage": {"default": "prod", "description": "the stack's StageName parameter"}}},
    {"url": f"http://127.0.0.1:{LOCAL_PORT}",
     "description": "bin/serve on this machine (unsigned development tokens; --port changes the port)"},
]


# The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers) a turn's answer carries for a
# plan with limits (chatcore.money.plans): a turn begun or retried, and its refusals once the session
# is read (429, 409, 402, 403, 413).
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {"description": ("the limits of the caller's plan, one item each: "
                                         "\"turns-per-minute\";q=5;w=60 (q: quota, w: window in seconds)"),
                         "schema": {"type": "string"}},
    "RateLimit": {"description": ("what is left of each limit after this turn (a turn that did not start "
                                  "takes nothing): \"turns-per-minute\";r=4;t=60 "
                                  "(r: remaining, t: seconds until it frees up)"),
                  "schema": {"type": "string"}},
}


def documented_problem(description: str, *, retry_after: bool = False) -> dict:
    """How the OpenAPI document states a problem response: ``application/problem+json`` (the Problem
    schema), with ``Retry-After`` when asked. (``chatcore.web.app.problem_response`` sends one.)"""
    response: dict = {"description": description, "content": copy.deepcopy(PROBLEM_CONTENT)}
    if retry_after:
        response["headers"] = copy.deepcopy(RETRY_AFTER)
    return response


# What any operation can answer, besides its own: the API's and API Gateway's problems alike.
EVERY_OPERATION = {
    "401": documented_problem("no identity, or a token that is missing, expired or invalid (unauthorized); "
                             "API Gateway's authorizer answers it before the function runs"),
    "403": documented_problem("API Gateway refused the request (forbidden): a token for another app client, "
                             "or a route or method that does not exist in the deployed API"),
    "413": documented_problem("the body is larger than 6 MB (payload-too-large); API Gateway answers it "
                             "for bodies over its own limit"),
    "429": documented_problem("too many requests: API Gateway's throttling for the stage or for turns "
                             "(throttled), or more than API_REQUESTS_PER_MINUTE requests a minute of this user "
                             "(rate-limited, `limit`: requests-per-minute); try again after Retry-After seconds",
                             retry_after=True),
    "500": documented_problem("an error of ours (internal-error); the request may or may not have been done"),
    "503": documented_problem("a dependency is down (database-unavailable, storage-unavailable) or the "
                             "service is not configured (service-misconfigured); nothing was done, try "
                             "again after Retry-After seconds", retry_after=True),
}


def operation_id(name: str) -> str:
    """A route's name as its operationId: ``delete_session`` -> ``deleteSession`` (what generated
    clients call the method)."""
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def _hoist_defs(schema: dict, components: dict) -> dict:
    """Move a pydantic schema's ``$defs`` into the document's components (its refs point there)."""
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    return schema


def model_schema(model: type, components: dict) -> dict:
    """A pydantic model's JSON schema for the document's components, its sub-models hoisted."""
    return _hoist_defs(model.model_json_schema(ref_template="#/components/schemas/{model}"), components)


TURN_EVENT_REF = "#/components/schemas/TurnEvent"


def turn_event_stream(components: dict) -> dict:
    """The content of a turn's stream (``text/event-stream``) for the document: every event's data a
    named schema (``chatcore.wire.events``, added to ``components``), and ``TurnEvent``, one of them,
    told apart by ``event``. The schema of the content is the data of one event: what
    ``@hey-api/openapi-ts`` types its stream's items with (OpenAPI 3.1 has no ``itemSchema``; docs/api.md
    says what the generators make of either)."""
    from chatcore.wire.events import EVENTS, name_of

    refs = {name_of(model): f"#/components/schemas/{model.__name__}" for model in EVENTS}
    for model in EVENTS:
        components[model.__name__] = model_schema(model, components)
    components["TurnEvent"] = {
        "title": "TurnEvent",
        "description": ("the data of one event of a turn's stream (its `data:` line); `event` says which, as the "
                        "SSE `event:` field does. The last event is TurnCompleted, TurnFailed or TurnCancelled"),
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "event", "mapping": refs}}
    return {"text/event-stream": {"schema": {"$ref": TURN_EVENT_REF}}}


def complete(schema: dict) -> None:
    """Add to an OpenAPI document what every operation shares: the servers, the Problem schema (and
    its parts), and the problem responses of ``EVERY_OPERATION`` (an operation's own description
    of a status stays; a 503 always names Retry-After)."""
    from chatcore.wire.schemas import Problem

    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = model_schema(Problem, components)
    schema["servers"] = copy.deepcopy(SERVERS)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status, response in EVERY_OPERATION.items():
                own = responses.setdefault(status, copy.deepcopy(response))
                if "headers" in response:
                    own.setdefault("headers", {}).update(copy.deepcopy(response["headers"]))

