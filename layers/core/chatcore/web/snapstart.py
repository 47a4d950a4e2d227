"""SnapStart for the chat function: what its snapshot holds, and what each restored sandbox makes anew.

With SnapStart (template.yaml: ``SnapStart: ApplyOn: PublishedVersions`` on the chat function), Lambda
initialises the function once per published version, snapshots the memory and disk of that sandbox,
and starts every later sandbox by restoring the snapshot instead of running the cold start again.
Whatever the snapshot holds is therefore SHARED by every sandbox restored from it, possibly for days.

The Lambda Web Adapter (v1.1.0 = layer 30 and later) bridges the SnapStart hooks to this app: before
the snapshot it POSTs to ``AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH``, after each restore to
``AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH`` (a non-2xx fails the phase), and it answers 403 to any
request from outside for those paths. The routes exist only where those variables are set.

Before the checkpoint, kept (safe to share, slow to make): every module of the turn path imported
(agno, the anthropic SDK, Pillow with its HEIF plugin, boto3's S3 model), the agents' and teams'
specs, the pinned prices, the settings (environment only); the heap is frozen so collections skip it.

Dropped before the checkpoint and again after each restore (must not be shared), made anew on first use:
- Postgres connections (the pool) and the RDS client that signs IAM tokens: a snapshotted socket is
  dead, and two sandboxes must never share one;
- the S3 client and agno's S3 media storage (connection pools, credentials);
- the Claude models, their HTTP clients and the agents and teams built on them (connection pools,
  and the Anthropic API key they were made with);
- cached secrets (Powertools' parameter cache) and Powertools' parameter providers (each holds a boto3
  client: a connection pool and the credentials it was made with): a rotated key is read again;
- boto3's default session (its credentials) and the Lambda client that starts account jobs.

After each restore: ``random`` is reseeded from the OS (its state is in the snapshot: every sandbox
would draw the same numbers, and so the same retry jitter), and uuid6's last-timestamp state is
cleared. ``uuid7`` draws its random bits from ``secrets`` (the OS), so run and message ids are unique
across sandboxes either way; ``secrets`` and ``os.urandom`` need no reseeding.
"""

from __future__ import annotations

import gc
import importlib
import os
import random
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from chatcore.observability import logger

BEFORE_CHECKPOINT = "AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH"
AFTER_RESTORE = "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"

# The turn path's modules, imported into the snapshot (the chat function's cold start is mostly these).
WARM_MODULES = (
    "chatcore.turns.run", "chatcore.turns.agent", "chatcore.turns.team", "chatcore.turns.registry",
    "chatcore.turns.compaction", "chatcore.media.agno_storage", "chatcore.money.cost",
    "agno.agent", "agno.team", "agno.models.anthropic", "anthropic", "botocore.client",
)


def warm() -> None:
    """Import and load what every sandbox may share (before the checkpoint)."""
    for name in WARM_MODULES:
        importlib.import_module(name)
    from chatcore.catalog import agent_specs, team_specs
    from chatcore.media import photos
    from chatcore.money.prices import default_price_book

    # (the catalog's price row ids were read at start-up by sync_catalog: stable, safe to share)
    agent_specs(), team_specs(), default_price_book()
    photos._pillow()  # Pillow's plugins and the HEIF opener registered


def forget_connections() -> None:
    """Drop everything that holds a connection, a credential or a secret; each is made anew on use."""
    import sys

    from chatcore import db
    from chatcore.media import s3

    db.close_pool()
    s3.forget_client()
    # Only what was imported can hold anything: no import here pulls agno into a sandbox that never ran a turn.
    if (registry := sys.modules.get("chatcore.turns.registry")) is not None:
        registry.forget_conversations()
    if (claude := sys.modules.get("chatcore.turns.claude")) is not None:
        claude.claude.cache_clear()
    if (compaction := sys.modules.get("chatcore.turns.compaction")) is not None:
        compaction._summariser.cache_clear()
    if (storage := sys.modules.get("chatcore.media.agno_storage")) is not None:
        storage.media_storage.cache_clear()
        storage.model_media_storage.cache_clear()
    if (jobs := sys.modules.get("chatcore.account.jobs")) is not None:
        jobs.forget_client()
    if (parameters := sys.modules.get("aws_lambda_powertools.utilities.parameters")) is not None:
        parameters.clear_caches()
        from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

        DEFAULT_PROVIDERS.clear()  # the providers and their boto3 clients, made anew on next use
    if (boto3 := sys.modules.get("boto3")) is not None:
        boto3.DEFAULT_SESSION = None


def reseed() -> None:
    """What a restored sandbox must not share with its siblings: the random generator's state."""
    random.seed()  # from os.urandom
    import uuid6

    uuid6._last_v6_timestamp = uuid6._last_v7_timestamp = uuid6._last_v8_timestamp = None


def before_checkpoint() -> None:
    warm()
    forget_connections()
    gc.collect()
    gc.freeze()


def after_restore() -> None:
    reseed()
    forget_connections()


async def _before_checkpoint(_: Request) -> JSONResponse:
    import asyncio

    await asyncio.to_thread(before_checkpoint)
    logger.info("snapstart: warmed and ready for the snapshot")
    return JSONResponse({"ok": True})


async def _after_restore(_: Request) -> JSONResponse:
    after_restore()
    logger.info("snapstart: restored; connections, clients and the random state are new")
    return JSONResponse({"ok": True})


def hook_routes() -> Sequence[BaseRoute]:
    """The adapter's SnapStart hooks, where the function is configured for them (never locally)."""
    routes = []
    if path := os.environ.get(BEFORE_CHECKPOINT):
        routes.append(Route(path, _before_checkpoint, methods=["POST"], include_in_schema=False))
    if path := os.environ.get(AFTER_RESTORE):
        routes.append(Route(path, _after_restore, methods=["POST"], include_in_schema=False))
    return routes
