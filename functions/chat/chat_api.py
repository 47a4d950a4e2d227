"""The chat function: streams agent and team turns (ASGI, behind the Lambda Web Adapter in
response_stream mode). Its routes are ``chatcore.web.routes.turn_stream``'s: a turn, and the user's
decision on a turn paused for approval (the rest of the same run); with SnapStart (in
AWS) the Web Adapter's hooks around the snapshot are mounted too (``chatcore.web.snapstart``).
"""

from __future__ import annotations

from chatcore.web.cold_start import imports_frozen

with imports_frozen():
    from chatcore.catalog import sync_catalog
    from chatcore.notify.sns import announce
    from chatcore.web import snapstart
    from chatcore.web.app import create_web_app
    from chatcore.web.routes import turn_stream
    from chatcore.web.routes.turn_stream import add_openapi  # noqa: F401 - the combined document's (local.server)

routes = turn_stream.routes
app = create_web_app(routes=[*routes, *snapstart.hook_routes()], on_startup=[sync_catalog, announce])
