"""The process's AWS clients: one boto3 client a service, made on first use (boto3 is imported then,
so a function that never calls a service never loads it), with the short timeouts and bounded retries
its caller chose, and dropped by ``forget`` (a SnapStart restore, a test that puts a fault in front of
the service): the next call makes a new one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from chatcore.config import Settings, get_settings


class Client:
    """The process's client of one AWS ``service``; ``options(settings)`` gives its ``endpoint_url``
    (None: AWS's) and the rest of its botocore ``Config``."""

    def __init__(self, service: str, options: Callable[[Settings], dict[str, Any]]):
        self.service, self._options = service, options
        self._lock = threading.Lock()
        self.client: Any = None

    def get(self) -> Any:
        with self._lock:
            if self.client is None:
                import boto3
                from botocore.config import Config

                settings = get_settings()
                options = dict(self._options(settings))
                endpoint = options.pop("endpoint_url", None)
                self.client = boto3.client(self.service, region_name=settings.aws_region, endpoint_url=endpoint,
                                           config=Config(**options))
            return self.client

    def forget(self) -> None:
        with self._lock:
            self.client = None
