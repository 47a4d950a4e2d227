"""Serve every route of the API (the streaming turn included) with uvicorn on one port.

In AWS the routes are split over three functions (functions/chat streams turns and imports agno;
functions/events resumes a turn's stream without it; functions/api serves the rest, buffered);
locally one app includes them all.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_DIRS = ("functions/chat", "functions/events", "functions/api")


def combined_app():
    """One FastAPI app with the routers of every HTTP function."""
    for folder in FUNCTION_DIRS:
        path = str(ROOT / folder)
        if path not in sys.path:
            sys.path.insert(0, path)
    import api_app
    import chat_api
    import events_app

    from chatcore.catalog import sync_catalog
    from chatcore.notify.sns import announce
    from chatcore.web.fastapi_app import create_app

    app = create_app(title="Agent chat API", routers=api_app.ROUTERS, on_startup=[sync_catalog, announce],
                     extra_openapi=[chat_api.add_openapi, events_app.add_openapi])
    # the streaming functions' Starlette routes, as deployed
    app.router.routes.extend([*chat_api.routes, *events_app.routes])
    return app


class BackgroundServer:
    """uvicorn in a daemon thread (bin/serve, the demo and the tests). Off the main thread uvicorn
    installs no signal handlers: whoever runs it decides what a signal does (local/serve.py)."""

    def __init__(self, port: int, app=None, *, host: str = "127.0.0.1", log_level: str = "warning",
                 graceful_seconds: float | None = None):
        import uvicorn

        self.port = port
        self.host = host
        self.server = uvicorn.Server(uvicorn.Config(app or combined_app(), host=host, port=port,
                                                   log_level=log_level, lifespan="on",
                                                   timeout_graceful_shutdown=graceful_seconds))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host == '0.0.0.0' else self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start (see the log above)")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout)


def start_spool_consumer():
    """The spool's consumer (``chatcore.spool.consumer``) as a thread of this process, when a spool
    queue is configured (``SPOOL_QUEUE_URL``): what the spool function does in AWS. None without one."""
    from chatcore.config import get_settings

    if not get_settings().spool_queue_url:
        return None
    from chatcore.spool.consumer import PollingConsumer

    return PollingConsumer().start()


def serve_forever(host: str, port: int) -> None:
    """An instance of the API (a process of its own), with the spool's consumer."""
    import uvicorn

    os.environ.setdefault("DB_POOL_MAX", "4")
    consumer = start_spool_consumer()
    if consumer is not None:
        print(f"spool: consumer thread polling {os.environ['SPOOL_QUEUE_URL']}", file=sys.stderr, flush=True)
    uvicorn.run(combined_app(), host=host, port=port, log_level="info", lifespan="on")
