"""The FastAPI app factory of the API function (and of the local server that serves every route):
``chatcore.web.app``'s shared pieces plus FastAPI's validation errors and the OpenAPI document.

No agno import here: the non-agent functions stay lean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from chatcore.errors import InvalidInput
from chatcore.web import openapi
from chatcore.web.app import EXCEPTION_HANDLERS, HEALTHZ, MIDDLEWARE, lifespan_running, problem_response

# The problems of every route of the API function, besides those of every operation (openapi.EVERY_OPERATION).
PROBLEM_RESPONSES = {
    404: openapi.documented_problem("unknown, or someone else's (not-found)"),
    422: openapi.documented_problem("invalid fields (invalid-input): `errors` lists each, `field` names one"),
}


async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
    details = err.errors()
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in details]
    if any(e.get("type") == "json_invalid" for e in details):
        return problem_response(InvalidInput("the body is not valid JSON", errors=errors))
    return problem_response(InvalidInput("the request has invalid fields", errors=errors))


def create_app(*, title: str, routers: Sequence[APIRouter], on_startup: Sequence[Callable[[], None]] = (),
               extra_openapi: Sequence[Callable[[dict], None]] = ()) -> FastAPI:
    """A FastAPI app of ``routers`` with problem handlers; ``on_startup`` runs once, in a thread.

    ``extra_openapi`` functions add what FastAPI cannot see (the chat function's Starlette route)."""
    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan_running(on_startup), middleware=MIDDLEWARE,
                  exception_handlers={**EXCEPTION_HANDLERS, RequestValidationError: _validation},
                  description="Agent and team conversations for mobile apps. See docs/api.md.",
                  generate_unique_id_function=lambda route: openapi.operation_id(route.name))
    app.router.routes.append(HEALTHZ)
    for router in routers:
        app.include_router(router)
    _customise_openapi(app, extra_openapi)
    return app


def _customise_openapi(app: FastAPI, extra_openapi: Sequence[Callable[[dict], None]]) -> None:
    """Add the security scheme and any extra paths, then what every operation shares (the servers,
    the Problem schema and its responses: ``chatcore.web.openapi``)."""
    from fastapi.openapi.utils import get_openapi

    def document() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})
            schema["components"]["securitySchemes"] = {
                "cognito": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                            "description": "a Cognito user pool token; API Gateway checks it"}}
            schema["security"] = [{"cognito": []}]
            for extend in extra_openapi:
                extend(schema)
            openapi.complete(schema)
            schema["paths"] = dict(sorted(schema["paths"].items()))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document
