"""The events function: resumes a turn's stream from any instance (ASGI, behind the Lambda Web
Adapter in response_stream mode). Its one route is ``chatcore.web.routes.turn_events``; it never
imports agno, so a cold start stays short for a phone that is reconnecting.
"""

from __future__ import annotations

from chatcore.web.cold_start import imports_frozen

with imports_frozen():
    from chatcore.web.app import create_web_app
    from chatcore.web.routes import turn_events
    from chatcore.web.routes.turn_events import add_openapi  # noqa: F401 - the combined document's (local.server)

routes = turn_events.routes
app = create_web_app(routes=routes)
