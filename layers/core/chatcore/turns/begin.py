"""The start of a turn, in one transaction of two round trips (pipelined):

1. one statement locks the user's session and reads all the turn decides on (404, the stored
   outcome of a repeated ``client_turn_id``, 402 over budget, 409 while a turn runs, the history);
2. the run and the user's message are inserted and the transaction commits.

A turn with photos puts them in S3 first, before the transaction (content-addressed keys, so a
retry overwrites nothing new): no network call while the session's lock is held. A turn refused
then deletes, after the transaction, the objects it put that no stored message names.

The model's input is then built from the history read in step 1 under the context budgets
(``turns.context``); a message that alone cannot fit one request is refused in step 1.
"""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal
from uuid import UUID

import psycopg
from agno.media import Image
from agno.models.message import Message
from uuid6 import uuid7

from chatcore import db
from chatcore.observability import timed
from chatcore.catalog import participants, price_ids
from chatcore.catalog.specs import web_searches_per_call
from chatcore.config import get_settings
from chatcore.errors import (
    ClientTurnIdReused, InvalidInput, NotFound, ProblemError, ServiceMisconfigured, StorageUnavailable,
    TurnInProgress,
)
from chatcore.errors import TurnPaused as TurnPausedProblem
from chatcore.media.agno_storage import (
    discard_photos, inline_for_model, model_file, store_photo, to_agno_file, to_agno_image,
)
from chatcore.media import s3
from chatcore.money.budgets import month_bounds, refuse_if_over
from chatcore.money.plans import check_allowed, check_limits, limits_of, rate_limit_headers
from chatcore.money.cost import CostCalculator, ExchangeRate
from chatcore.memory.facts import render
from chatcore.spool import queue as spool_queue
from chatcore.spool.records import store_record
from chatcore.store import approvals as approval_rows, memories, sessions, turns as turn_rows
from chatcore.store.history import history_params
from chatcore.turns.agent import MEMORY_OVERHEAD_TOKENS, Conversation
from chatcore.turns.compaction import CompactionPlan, early, summary_messages, summary_tokens, turns_to_fold
from chatcore.turns.claude import dearest_call_usd, max_output_tokens
from chatcore.turns.context import (
    IMAGE_TOKENS, PAGE_TOKENS, Budgets, Sizes, build_context, check_fits, group_turns, is_context_refusal,
    message_tokens,
)
from chatcore.turns.memory import MemoryScope, recall_messages
from chatcore.turns.finish import flush_pending
from chatcore.turns.outcome import RunError, TurnOutcome
from chatcore.turns.registry import conversation_for
from chatcore.turns.turn import BudgetAtStart, KnownTurn, PreparedTurn, TurnInput

log = logging.getLogger(__name__)


def begin_turn(turn: TurnInput) -> PreparedTurn | KnownTurn:
    """Store the start of a turn (see the module); a ``KnownTurn`` answers a retried
    ``client_turn_id`` instead. Raises the problem (404, 402, 409, 503) before anything is stored."""
    with timed("begin"):
        try:
            try:
                begun = _begin_after_spooled(turn)
            except psycopg.errors.UniqueViolation:
                # The same client_turn_id (or a second turn of the session) at the same moment: this
                # request waited for the session's lock while the other one committed its run, but read
                # the runs as they were before. Read again: it now sees that run (replay, or 409).
                log.info("turn of session %s raced another; reading again", turn.session_id)
                begun = _begin_after_spooled(turn)
        except ProblemError as e:  # every turn answer carries the plan's limits as they stand (402, 409, ...)
            e.headers = {**turn.rate_limit_headers, **(e.headers or {})}
            _discard_unnamed_photos(turn)
            raise
        except Exception:
            _discard_unnamed_photos(turn)
            raise
    if isinstance(begun, KnownTurn):  # a retry is answered by the stored turn: its own photos are those
        _discard_unnamed_photos(turn)
    return begun


def _begin_after_spooled(turn: TurnInput) -> PreparedTurn | KnownTurn:
    """``_begin_turn``; when the session's running turn is one that was spooled (it finished while the
    database was unreachable, ``chatcore.spool``), that turn is written from its record first, here
    (the spool's consumer then finds it stored), and the turn begins: no 409 while the spool drains."""
    try:
        return _begin_turn(turn)
    except TurnInProgress as e:
        running = e.extra.get("run_id")
        try:
            finished = spool_queue.read_spooled(turn.session_id, UUID(running)) if running else None
        except Exception:  # noqa: BLE001 - S3 unreachable: the 409 stands
            log.warning("could not look for a spooled turn %s", running, exc_info=True)
            finished = None
        if finished is None:
            raise
    log.info("turn %s of session %s was spooled; writing it before the next turn", running, turn.session_id)
    store_record(finished, drop_orphans=True)
    spool_queue.forget(turn.session_id, running)
    return _begin_turn(turn)


def _discard_unnamed_photos(turn: TurnInput) -> None:
    """A turn refused after it put its photos in S3 (409, 402, 413, 503, or its session deleted
    meanwhile), or answered by the stored turn of its ``client_turn_id``, leaves no object of its
    own: each object it put that no stored message of the session names is deleted (a key is its
    content's, so the same photo of an earlier turn stays; a session that is gone names none).
    Called with no transaction open. Best effort: the answer stands.

    The one case this cannot see: another request of the same session with the same photo, which
    put it before this check and stores its message after it (two turns of one session begun at the
    same moment, the other one not refused)."""
    if not turn.stored_keys:
        return
    try:
        with db.connection() as conn:
            images = sessions.session_images(conn, turn.session_id, turn.stored_keys)
        named = {s3.stored_image_key(image, turn.session_id)[0] for image in images}
        unnamed = [key for key in dict.fromkeys(turn.stored_keys) if key not in named]
        if unnamed:
            discard_photos(unnamed)
    except Exception:  # noqa: BLE001 - the refusal is answered all the same
        log.warning("could not delete the photos of a refused turn of session %s", turn.session_id, exc_info=True)


def _begin_turn(turn: TurnInput) -> PreparedTurn | KnownTurn:
    settings = get_settings()
    if not turn.message.strip() and not turn.images and not turn.documents:
        raise InvalidInput("a turn needs a message or an image (or a PDF document)", field="message")
    run_id = uuid7()
    month_start, month_end = month_bounds()
    flush_pending()  # turns this process could not store while the database was down, first
    if turn.images or turn.documents:
        _store_photos(turn)
    with db.connection() as conn, db.pipelined_transaction(conn):
        row = turn_rows.read_turn_start(
            conn, sub=turn.sub, session_id=turn.session_id, client_turn_id=turn.client_turn_id,
            stale_seconds=settings.stale_turn_seconds, month_start=month_start, month_end=month_end,
            approval_ttl=settings.approval_ttl, **history_params(settings))
        if row is None:
            raise NotFound("no such session")
        # the RateLimit headers of an answer that starts no turn (a retry, a refusal); admitted: below
        limits = limits_of(row)
        turn.rate_limit_headers = rate_limit_headers(limits, admitted=False)
        if row["prior_id"] is not None:
            prior = {k.removeprefix("prior_"): v for k, v in row.items() if k.startswith("prior_")}
            # the same client_turn_id with another text, or another number of photos or PDFs, is another turn
            if prior["request"] is not None and [prior["request"][0] or "", *prior["request"][1:]] != [
                    turn.message or "", len(turn.images), len(turn.documents)]:
                raise ClientTurnIdReused(
                    "this client_turn_id was sent before with a different message; use a new one for a new turn",
                    run_id=str(row["prior_id"]))
            # a retry of a stored turn, running or finished: its stream is followed from its events
            return KnownTurn(session_id=turn.session_id, run_id=row["prior_id"])
        if row["paused_id"] is not None:
            if not row["paused_expired"]:
                raise TurnPausedProblem(
                    "a turn of this session waits for the user's approval: decide on it (POST "
                    ".../approvals) or stop it (POST .../cancel) first", run_id=str(row["paused_id"]))
            approval_rows.expire_run(conn, row["paused_id"], settings.approval_ttl)
        if row["running_id"] is not None:
            if not row["running_stale"]:
                raise TurnInProgress("a turn is already running in this session; wait for it to finish",
                                     run_id=str(row["running_id"]))
            turn_rows.abandon_turn(conn, row["running_id"])
        conversation = conversation_for(row["agent_name"], row["team_name"])
        spec = conversation.spec
        # 403 / 429 before anything is stored or any model call: what the plan allows, its rate limits
        check_plan_allows(row, conversation)
        admitted = check_limits(row, turn.sub, limits)
        recall = _recall(conn, turn, row) if row["memory_enabled"] and conversation.remembers else None
        overhead = conversation.overhead_tokens
        if recall is not None:
            overhead += MEMORY_OVERHEAD_TOKENS + sum(message_tokens(m) for m in recall)
        reservation, reserved_tokens = Decimal(0), 0
        if (row["monthly_budget_zar"] is not None and row["fx_rate"] is not None) or row["tokens_per_day"] is not None:
            reservation, reserved_tokens = turn_reservation(turn, row, conversation, overhead, settings)
        # 402 before anything is stored or any model call: the most this turn can cost must fit
        refuse_if_over(row["monthly_budget_zar"], row["month_spent"], month_start, reserved=row["month_reserved"],
                       reservation=reservation)
        if row["fx_rate"] is None:
            raise ServiceMisconfigured("no USD/ZAR exchange rate is configured; add one to fx_rates")
        budgets = Budgets.configured(settings).shrunk(_recent_refusals(row["recent_outcomes"]))
        images = [to_agno_image(img, turn.session_id, str(uuid7())) for img in turn.images]
        documents = [to_agno_file(doc, turn.session_id, str(uuid7())) for doc in turn.documents]
        # The model's copy of the message: the same id and text, the images and documents as the bytes we have.
        user_message = Message(id=str(uuid7()), role="user", content=turn.message, images=[
            Image(id=image.id, content=upload.content, mime_type=upload.mime_type)
            for image, upload in zip(images, turn.images)] or None, files=[
            model_file(doc, file.id) for file, doc in zip(documents, turn.documents)] or None)
        # 413 before anything is stored when the message alone cannot fit one request
        check_fits(user_message, budgets, overhead_tokens=overhead)
        stored_message = Message(id=user_message.id, role="user", content=turn.message, images=images or None,
                                 files=documents or None)
        turn_rows.insert_run(conn, run_id=run_id, session_id=turn.session_id, agent_name=conversation.name,
                             client_turn_id=turn.client_turn_id, reserved_zar=reservation,
                             reserved_tokens=reserved_tokens)
        turn_rows.insert_messages(conn, [{
            "id": UUID(stored_message.id), "session_id": turn.session_id, "run_id": run_id,
            "role": "user", "agent_name": None, "message_parts": stored_message.to_dict(),
        }])
    turn.rate_limit_headers = admitted
    history = []
    for message_dict in row["history"] or []:
        if message_dict.get("role") == "assistant" and not message_dict.get("content") and not message_dict.get(
                "tool_calls"):
            continue  # a billed row of a stopped turn's aborted call: nothing the model said
        message = Message.from_dict(message_dict)
        message.from_history = True
        history.append(message)
    try:
        inline_for_model(history)
    except Exception as e:  # noqa: BLE001 - S3 down: the run is closed, never left running
        log.exception("could not read the photos of session %s", turn.session_id)
        _close_failed(turn, run_id, "storage-error", f"could not read the conversation's photos ({e.__class__.__name__})")
        raise StorageUnavailable(f"could not read the conversation's photos ({e.__class__.__name__}); "
                                 "the turn was not run, try again") from e
    history, compacting = _model_history(turn, row, history, user_message, budgets, overhead, recall or [])
    fx = ExchangeRate(row["fx_rate_id"], row["fx_rate"], row["fx_rate_date"])
    costs = CostCalculator(fx, price_ids())
    scope = None if recall is None else MemoryScope(user_id=row["user_id"], session_id=turn.session_id,
                                                    run_id=run_id, costs=costs, recall=recall)
    budget = None if row["monthly_budget_zar"] is None else BudgetAtStart(
        row["user_id"], row["monthly_budget_zar"], row["month_spent"])
    return PreparedTurn(input=turn, run_id=run_id, conversation=conversation, history=history,
                        user_message=user_message, costs=costs, compacting=compacting, memory=scope, budget=budget,
                        owner=row["user_id"], has_devices=row["has_devices"])


def _recall(conn: psycopg.Connection, turn: TurnInput, row: dict) -> list[Message]:
    """The session's recall of the user's memories (``turns.memory``): its snapshot, else (its first
    turn, or the user changed or deleted a memory since) the memories rendered now and saved as the
    snapshot, in the turn's first transaction (pipelined: no round trip of its own)."""
    snapshot = row["memory_snapshot"]
    if snapshot is None or row["snapshot_version"] != row["memory_version"]:
        snapshot = render(row["memories_to_recall"] or [], get_settings().memory_max_tokens)
        memories.save_snapshot(conn, turn.session_id, snapshot, row["memory_version"])
    return recall_messages(snapshot)


def check_plan_allows(row: dict, conversation: Conversation) -> None:
    """403 not-in-plan when the user's plan leaves out the session's agent or team, or the model, thinking
    or web search of any spec whose calls a turn may make (a team's members too)."""
    for part in participants(conversation.spec):
        check_allowed(row, name=conversation.name, model_id=part.model_id, thinking=bool(part.thinking_budget),
                      web_search=web_searches_per_call(part) > 0)


def turn_reservation(turn: TurnInput, row: dict, conversation: Conversation, overhead: int, settings) -> tuple[Decimal, int]:
    """The most this turn can cost, in rands, and the most tokens it can use: for each model call it
    may make (MAX_MODEL_CALLS_PER_TURN), its whole input (the history as read, the message, its photos,
    the instructions and the recall, ``overhead``; at most CONTEXT_MAX_TOKENS) as uncached input, plus
    the PDF pages of the message and the history (at most CONTEXT_MAX_DOCUMENT_PAGES, on top), and
    ``max_tokens`` of output (its thinking budget included) and its web searches, at the dearest of the
    agent's or the team's leader's and members' (``turns.claude.dearest_call_usd``; no rate configured:
    no rands)."""
    history_chars = _json_chars(row["history"] or [], 4 * settings.context_max_tokens)
    pages = sum(d.pages for d in turn.documents) + sum(
        int((f.get("metadata") or {}).get("pages") or 0) for m in row["history"] or [] for f in m.get("files") or [])
    input_tokens = min(settings.context_max_tokens,
                       overhead + math.ceil((history_chars + len(turn.message)) / 4)
                       + IMAGE_TOKENS * len(turn.images)) + PAGE_TOKENS * min(pages, settings.context_max_document_pages)
    calls = settings.max_model_calls_per_turn
    tokens = (input_tokens + max(max_output_tokens(s.thinking_budget) for s in participants(conversation.spec))) * calls
    if row["fx_rate"] is None:
        return Decimal(0), tokens
    usd = dearest_call_usd(conversation.spec, input_tokens)
    return (usd * calls * row["fx_rate"]).quantize(Decimal("1e-10")), tokens


def _json_chars(items: list, limit: int) -> int:
    """``len(json.dumps(items))``, newest items first, stopping once past ``limit`` (a long history is
    capped at the token budget anyway: its full JSON is never needed)."""
    total = 2  # the brackets
    for index, item in enumerate(reversed(items)):
        total += len(json.dumps(item, default=str)) + (2 if index else 0)  # ", " between items
        if total > limit:
            break
    return total


def _close_failed(turn: TurnInput, run_id: UUID, code: str, message: str) -> None:
    """Mark a run that will not be run as failed (its user message stays, with the run's status)."""
    outcome = TurnOutcome(session_id=turn.session_id, run_id=run_id, status="failed", error=RunError(code, message))
    try:
        with db.connection() as conn:
            turn_rows.finish_run(conn, **outcome.run_row())
    except Exception:  # noqa: BLE001 - the stale-turn rule closes it later
        log.exception("could not close run %s", run_id)


def _store_photos(turn: TurnInput) -> None:
    """Put the turn's photos in S3 before its transaction (no network call while the session's lock
    is held), once the session is known to be the caller's. A turn refused afterwards (409, 402)
    deletes those no stored message names (``_discard_unnamed_photos``)."""
    with db.connection() as conn:
        if not sessions.owns_session(conn, turn.sub, turn.session_id):
            raise NotFound("no such session")
    try:
        for upload in [*turn.images, *turn.documents]:
            turn.stored_keys.append(store_photo(upload, turn.session_id))
    except Exception as e:  # noqa: BLE001 - S3 down: nothing is stored, the app may retry
        log.exception("could not upload the images or documents of a turn")
        raise StorageUnavailable(f"could not store the images and documents ({e.__class__.__name__}); "
                                 "nothing was stored, try again") from e


def _model_history(turn: TurnInput, row: dict, history: list[Message], user_message: Message, budgets: Budgets,
                   base_overhead: int, recall: list[Message]) -> tuple[list[Message], CompactionPlan | None]:
    """The model's copy of the history: the recall of the user's memories, the session's summary, then
    the recent turns that fit the budgets; and the compaction this turn starts, when the history has
    outgrown three quarters of the token budget (``turns.compaction``: run beside the model call,
    never waited for before it)."""
    summary, covered = row["summary"], row["summary_turns"] or 0
    overhead = base_overhead + summary_tokens(summary)
    # a model call made before the summary was written had the turns it covers in its prompt: it does not
    # tell the size of what is sent now (turns.context.calibration)
    since = row["summary_updated_at"].timestamp() if row.get("summary_updated_at") is not None else None
    plan = None
    sizes = Sizes()  # each message measured once for both builds
    fold = turns_to_fold(history, build_context(history, user_message, early(budgets), overhead_tokens=overhead,
                                                apply=False, calibrate_after=since, sizes=sizes), budgets)
    if fold:
        turns = group_turns(history)
        # a turn's first message is its user message, whose id is its row's (a model's message keeps agno's)
        first_left = turns[fold][0].id if fold < len(turns) else user_message.id
        plan = CompactionPlan(summary=summary, turns=turns[:fold], covered=covered, covers_before=UUID(str(first_left)),
                              run_id=uuid7(), session_id=str(turn.session_id), user_id=turn.sub)
    context = build_context(history, user_message, budgets, overhead_tokens=overhead, calibrate_after=since,
                            sizes=sizes)
    if context.turns_left_out or context.images_left_out or context.documents_left_out:
        log.info("%d stored turn(s), %d photo(s) and %d document(s) left out of the model's input (%d tokens, "
                 "calibration %.2f)", context.turns_left_out, context.images_left_out, context.documents_left_out,
                 context.tokens, context.calibration)
    return recall + (summary_messages(summary) if summary else []) + context.history, plan


def _recent_refusals(outcomes: list | None) -> int:
    """How many of the session's last (up to four) finished turns the API refused for the request's
    size: the budgets stay halved for each while it is among them, so a session whose requests the
    model refused does not grow back into the same refusal on the next turn."""
    return sum(1 for status, error_message in outcomes or []
               if status == "failed" and is_context_refusal(error_message))
