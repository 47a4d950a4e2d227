"""A session with one agent: the agno ``Agent`` built from its spec once per process, agno's events
of its run for a turn, and the messages its run produced."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from agno.agent import Agent
from agno.models.message import Message

from chatcore.catalog.specs import AgentSpec, needs_approval
from chatcore.media.agno_storage import model_media_storage
from chatcore.turns.claude import claude
from chatcore.turns.context import instructions_tokens
from chatcore.turns import memory
from chatcore.turns.tracking import RunRecord, RunTracker, billed_calls, run_messages

# What the memory tools and instructions add to every request when the user has memory on.
MEMORY_OVERHEAD_TOKENS = instructions_tokens(list(memory.INSTRUCTIONS), len(memory.TOOLS)) - instructions_tokens([], 0)


class Conversation(Protocol):
    """What a session talks to: an agent or a team."""

    name: str
    overhead_tokens: int  # the estimate of its instructions and tools in every request (turns.context)
    remembers: bool  # offers the memory tools (and reads the recall) when the user has memory on

    def stream(self, *, history: list[Message], message: Message, run_id: str, session_id: str,
               user_id: str, recall: list[Message] | None = None) -> Any:
        """agno's events of the turn's run. ``recall``: None when the user's memory is off (no memory
        tools); else the memory tools are offered, and ``recall`` (the session's recall, already at the
        start of ``history``) is what a team member that remembers reads too."""

    def records(self, tracker: RunTracker, input_ids: set[str]) -> list[RunRecord]: ...

    async def cancel(self, run_id: str) -> None: ...


def agno_tool(tool: Any) -> Any:
    """A tool of a spec as agno takes it: a tool that acts (``requires_approval``) becomes agno's
    ``Function`` with ``requires_confirmation``, so the model's call pauses the run (RunPaused) instead
    of running it; the others are passed as they are."""
    if not needs_approval(tool):
        return tool
    from agno.tools.function import Function

    function = Function.from_callable(tool)
    function.requires_confirmation = True
    return function


def build_agent(spec: AgentSpec, *, with_memory: bool = False, additional_input: list[Message] | None = None) -> Agent:
    """An Agno agent for ``spec``. No agno db: we store every message ourselves. With ``with_memory``, the
    memory tools and their instructions (``turns.memory``); ``additional_input`` goes first in its
    input (a team member's recall).

    ``store_media=False`` stops agno re-uploading images at the end of each run; the images are
    already in S3 and ``media_storage`` is still used to refresh references before model calls (its async
    kind: agno then hops to a thread only for a message that holds a reference, ``ThreadedMediaStorage``).
    """
    return Agent(
        id=spec.name,
        name=spec.name,
        description=spec.description,
        model=claude(spec.model_id, spec.thinking_budget),
        instructions=[*spec.instructions, *(memory.INSTRUCTIONS if with_memory else ())],
        tools=[*(agno_tool(t) for t in spec.tools), *(memory.TOOLS if with_memory else ()),
               *((spec.web_search.tool(),) if spec.web_search else ())],
        additional_input=additional_input or None,
        media_storage=model_media_storage(),
        store_media=False,
        telemetry=False,
        markdown=False,
    )


class AgentConversation:
    """A session with one agent: the history is passed as ``List[Message]``."""

    def __init__(self, spec: AgentSpec):
        self.spec = spec
        self.name = spec.name
        self.remembers = spec.remembers
        self.agent = build_agent(spec)
        # the same agent with the memory tools, for users who have memory on
        self.remembering_agent = build_agent(spec, with_memory=True) if spec.remembers else self.agent
        self.overhead_tokens = instructions_tokens([spec.description, *spec.instructions], len(spec.tools))

    def stream(self, *, history, message, run_id, session_id, user_id, recall=None):
        agent = self.agent if recall is None else self.remembering_agent
        return agent.arun(
            input=[*history, message], stream=True, stream_events=True, yield_run_output=True,
            run_id=run_id, session_id=session_id, user_id=user_id,
        )

    def resume(self, *, history, run_id, session_id, user_id, member=None):
        """agno's events of a paused run's continuation: ``history`` ends with the run's own messages and
        the results of the decided calls (all stored already), so the model is called again at once."""
        return self.agent.arun(
            input=list(history), stream=True, stream_events=True, yield_run_output=True,
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
