"""The HTTP routes, one module per resource. Each route is a thin adapter: it reads the request,
calls one function of the domain and shapes the answer.

The API function (FastAPI routers, assembled by ``functions/api/api_app.py``): ``catalog`` (agents
and teams), ``sessions``, ``messages`` (a session's history), ``turns`` (stopping a turn),
``usage``, ``uploads``, ``account`` (deleting and exporting it). The streaming functions (plain
Starlette routes, each with its OpenAPI description): ``turn_stream`` (the chat function: a turn,
streamed; it loads agno) and ``turn_events`` (the events function: a turn's stream resumed, without
agno). Importing this package imports none of them.
"""
