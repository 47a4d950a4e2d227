"""Serve the chat API with uvicorn, in the foreground or in a background thread."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_app():
    for folder in ("functions/chat",):
        path = str(ROOT / folder)
        if path not in sys.path:
            sys.path.insert(0, path)
    from chat_api import app

    return app


class BackgroundServer:
    """uvicorn in a daemon thread, for the demo."""

    def __init__(self, port: int):
        import uvicorn

        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(_import_app(), host="127.0.0.1", port=port,
                                                   log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the chat API did not start (see the log above)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_forever(host: str, port: int) -> None:
    import uvicorn

    os.environ.setdefault("DB_POOL_MAX", "4")
    uvicorn.run(_import_app(), host=host, port=port, log_level="info", lifespan="on")
