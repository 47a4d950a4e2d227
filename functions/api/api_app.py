"""The API function: every route but the streamed turn and its resumption. Buffered, behind the
Lambda Web Adapter. One router per resource (``chatcore.web.routes``).

It must not import agno (cold start): sessions, history, usage, uploads, the catalog and the
account, memories and settings only need Postgres and S3.
"""

from __future__ import annotations

from chatcore.web.cold_start import imports_frozen

with imports_frozen():
    from chatcore.catalog import sync_catalog
    from chatcore.notify.sns import announce
    from chatcore.web.fastapi_app import create_app
    from chatcore.web.routes import (
        account, catalog, devices, memories, messages, reminders, sessions, settings, turns, uploads, usage,
    )

ROUTERS = [catalog.router, sessions.router, turns.router, messages.router, usage.router, uploads.router,
           account.router, memories.router, settings.router, reminders.router,
           devices.router]

app = create_app(title="Agent chat API", routers=ROUTERS, on_startup=[sync_catalog, announce])
