"""A session with one agent: the agno ``Agent`` built from its spec once per process, agno's events
of its run for a turn, and the messages its run produced."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from agno.agent import Agent
from agno.models.message import Message

from chatcore.catalog.specs import AgentSpec
from chatcore.media.agno_storage import media_storage
from chatcore.turns.claude import claude
from chatcore.turns.context import instructions_tokens
from chatcore.turns.tracking import RunRecord, RunTracker, billed_calls, run_messages


class Conversation(Protocol):
    """What a session talks to: an agent or a team."""

    name: str
    overhead_tokens: int  # the estimate of its instructions and tools in every request (turns.context)

    def stream(self, *, history: list[Message], message: Message, run_id: str, session_id: str,
               user_id: str) -> Any: ...

    def records(self, tracker: RunTracker, input_ids: set[str]) -> list[RunRecord]: ...

    async def cancel(self, run_id: str) -> None: ...


def build_agent(spec: AgentSpec) -> Agent:
    """An Agno agent for ``spec``. No agno db: we store every message ourselves.

    ``store_media=False`` stops agno re-uploading images at the end of each run; the images are
    already in S3 and ``media_storage`` is still used to refresh references before model calls.
    """
    return Agent(
        id=spec.name,
        name=spec.name,
        description=spec.description,
        model=claude(spec.model_id),
        instructions=list(spec.instructions),
        tools=list(spec.tools),
        media_storage=media_storage(),
        store_media=False,
        telemetry=False,
        markdown=False,
    )


class AgentConversation:
    """A session with one agent: the history is passed as ``List[Message]``."""

    def __init__(self, spec: AgentSpec):
        self.spec = spec
        self.name = spec.name
        self.agent = build_agent(spec)
        self.overhead_tokens = instructions_tokens([spec.description, *spec.instructions], len(spec.tools))

    def stream(self, *, history, message, run_id, session_id, user_id):
        return self.agent.arun(
            input=[*history, message], stream=True, stream_events=True, yield_run_output=True,
            run_id=run_id, session_id=session_id, user_id=user_id,
        )

    def records(self, tracker: RunTracker, input_ids: set[str]) -> list[RunRecord]:
        root = tracker.root_run_id
        record = RunRecord(run_uuid=UUID(root), agent_name=self.name, model_id=self.spec.model_id,
                           error=tracker.error, cancelled=root in tracker.cancelled_runs())
        output = tracker.output_of(root)
        if output is not None and tracker.error is None:
            record.messages = run_messages(output, tracker, root, input_ids)
        else:
            record.messages = billed_calls(tracker, root)
        return [record]

    async def cancel(self, run_id: str) -> None:
        """Stop the run through agno's run cancellation (it ends at its next chunk or step)."""
        await Agent.acancel_run(run_id)
