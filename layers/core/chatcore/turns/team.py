"""Team turns: an Agno ``Team`` per turn (models reused), history passed as ``additional_input``.

Agno flattens ``Team.arun(input=List[Message])`` into one user text, losing the history, so the
history goes in through ``additional_input`` (with its media refreshed by us) and the new turn
as ``input=str`` plus ``images=``. Agno then builds its own copy of the user message, which is
not stored: ours was stored before the call.
"""

from __future__ import annotations

from uuid import UUID

from agno.team import Team
from agno.utils.media_offload import arefresh_messages_media

from chatcore.catalog.agents import agent_specs
from chatcore.catalog.specs import TeamSpec
from chatcore.media.agno_storage import media_storage
from chatcore.turns.agent import build_agent
from chatcore.turns import memory
from chatcore.turns.claude import claude
from chatcore.turns.context import instructions_tokens
from chatcore.turns.outcome import RunError
from chatcore.turns.tracking import RunRecord, RunTracker, billed_calls, run_messages


class TeamConversation:
    """A session with one team."""

    def __init__(self, spec: TeamSpec):
        self.spec = spec
        self.name = spec.name
        self.remembers = spec.remembers
        specs = agent_specs()
        self.member_specs = {name: specs[name] for name in spec.members}
        self.overhead_tokens = instructions_tokens(
            [spec.description, *spec.instructions, *(m.description for m in self.member_specs.values())], tools=1)

    def build_team(self, history, recall=None) -> Team:
        """The team for one turn. With ``recall`` (the user has memory on), a leader that remembers
        gets the memory tools, and so does each member that remembers, with the recall first in its
        input; the leader's recall is at the start of ``history``."""
        leader_memory = recall is not None and self.remembers
        members = [self._member(self.member_specs[name], recall) for name in self.spec.members]
        return Team(
            id=self.spec.name,
            name=self.spec.name,
            description=self.spec.description,
            model=claude(self.spec.model_id),
            members=members,
            instructions=[*self.spec.instructions, *(memory.INSTRUCTIONS if leader_memory else ())],
            tools=list(memory.TOOLS) if leader_memory else None,
            additional_input=list(history) or None,
            media_storage=media_storage(),
            store_media=False,
            telemetry=False,
            markdown=False,
        )

    @staticmethod
    def _member(spec, recall):
        if recall is None or not spec.remembers:
            return build_agent(spec)
        # its own copies (the same ids: never stored as the member's messages)
        return build_agent(spec, with_memory=True, additional_input=[m.model_copy() for m in recall])

    async def stream(self, *, history, message, run_id, session_id, user_id, recall=None):
        await arefresh_messages_media([*history, message], media_storage())
        team = self.build_team(history, recall)
        async for item in team.arun(
            input=message.content or "", images=list(message.images or []) or None,
            stream=True, stream_events=True, yield_run_output=True,
            run_id=run_id, session_id=session_id, user_id=user_id,
        ):
            yield item

    async def cancel(self, run_id: str) -> None:
        """Stop the team run and its members' runs through agno's run cancellation."""
        await Team.acancel_run(run_id)

    def _member_model(self, name: str | None) -> str | None:
        spec = self.member_specs.get(name or "")
        return spec.model_id if spec else None

    def records(self, tracker: RunTracker, input_ids: set[str]) -> list[RunRecord]:
        root = tracker.root_run_id
        stopped = tracker.cancelled_runs()
        leader = RunRecord(run_uuid=UUID(root), agent_name=self.name, model_id=self.spec.model_id,
                           error=tracker.error, cancelled=root in stopped)
        output = tracker.output_of(root)
        members = []
        if output is not None and tracker.error is None:
            # skip_user: agno's own copy of the user message; ours is already stored
            leader.messages = run_messages(output, tracker, root, input_ids, skip_user=True)
            members = list(getattr(output, "member_responses", None) or [])
        else:
            leader.messages = billed_calls(tracker, root)
        records = [leader]
        seen = {root}
        for member in members:
            name = getattr(member, "agent_name", None) or tracker.agent_names.get(member.run_id)
            error = tracker.errors.get(member.run_id)
            status = str(getattr(member, "status", "")).lower()
            if error is None and "error" in status:
                error_content = getattr(member, "content", None)
                error = RunError(code="model-error", message=str(error_content or "the member run failed"))
            messages = run_messages(member, tracker, member.run_id, input_ids)
            if error is not None and not any(m.usage for m in messages):  # no billed call in its output
                messages = billed_calls(tracker, member.run_id)
            records.append(RunRecord(run_uuid=UUID(member.run_id), agent_name=name,
                                     model_id=self._member_model(name), messages=messages, error=error,
                                     cancelled=member.run_id in stopped or root in stopped))
            seen.add(member.run_id)
        # member runs the stream showed but no output lists (a failed member, or the leader failed):
        # stored with their status and their billed calls
        seen_runs = [*tracker.agent_names, *(r for r, _ in tracker.model_calls), *(r for r, _ in tracker.cut_calls),
                     *tracker.errors]
        for run_id in dict.fromkeys(seen_runs):
            if run_id in seen:
                continue
            name = tracker.agent_names.get(run_id)
            records.append(RunRecord(run_uuid=UUID(run_id), agent_name=name, model_id=self._member_model(name),
                                     messages=billed_calls(tracker, run_id),
                                     error=tracker.errors.get(run_id), cancelled=run_id in stopped or root in stopped))
        return records
