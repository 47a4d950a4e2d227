"""What the HTTP functions share: the Starlette app (``app``), the FastAPI factory of the API
function (``fastapi_app``), the caller's identity, the request and response schemas, and SSE
framing with the documentation of a turn's events (``sse``). No agno import."""
