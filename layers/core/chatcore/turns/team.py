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
from chatcore.media.agno_storage import model_media_storage
from chatcore.turns.agent import build_agent
from chatcore.turns import memory
from chatcore.turns.claude import claude
from chatcore.turns.context import instructions_tokens
from chatcore.turns.outcome import RunError
from chatcore.turns.tracking import RunRecord, RunTracker, billed_calls, run_messages


def paused_delegations(messages, tracker: RunTracker) -> set[str]:
    """The leader's delegation calls to a member whose run paused for the user's approval."""
    members = {p["agent_name"] for p in tracker.pending if p["call_run_id"] != tracker.root_run_id}
    return {call["id"] for m in messages if m.message.role == "assistant"
            for call in m.message.tool_calls or []
            if (call.get("function") or {}).get("name") == "delegate_task_to_member"
            and delegated_member(call) in members}


def delegated_member(call: dict) -> str | None:
    """The member a leader's ``delegate_task_to_member`` call names."""
    import json

    try:
        return json.loads((call.get("function") or {}).get("arguments") or "{}").get("member_id")
    except (ValueError, AttributeError):
        return None


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
            model=claude(self.spec.model_id, self.spec.thinking_budget),
            members=members,
            instructions=[*self.spec.instructions, *(memory.INSTRUCTIONS if leader_memory else ())],
            tools=list(memory.TOOLS) if leader_memory else None,
            additional_input=list(history) or None,
            media_storage=model_media_storage(),
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
        await arefresh_messages_media([*history, message], model_media_storage())
        team = self.build_team(history, recall)
        async for item in team.arun(
            input=message.content or "", images=list(message.images or []) or None,
            files=list(message.files or []) or None, stream=True, stream_events=True, yield_run_output=True,
            run_id=run_id, session_id=session_id, user_id=user_id,
        ):
            yield item

    async def resume(self, *, history, run_id, session_id, user_id, member=None):
        """agno's events of a paused team run's continuation: the member whose call paused it first
        (``member``: its ``MemberResume``, its messages ending with the results of the decided calls),
        then the leader, whose delegation gets the member's answer as its tool result. A member that
        pauses again pauses the team run again (the leader waits)."""
        answer = None
        if member is not None:
            agent = build_agent(self.member_specs[member.agent_name])
            output = None
            async for item in agent.arun(input=list(member.messages), stream=True, stream_events=True,
                                         yield_run_output=True, run_id=member.run_id, session_id=session_id,
                                         user_id=user_id):
                if hasattr(item, "event"):
                    # the member's events as a team run streams them: with the team run as their parent
                    if getattr(item, "parent_run_id", None) is None and hasattr(item, "parent_run_id"):
                        item.parent_run_id = run_id
                else:
                    output = item
                yield item
            status = str(getattr(output, "status", "")).lower()
            if output is None or "paused" in status:
                return  # paused again: the team waits (the leader is not called)
            # the delegation's result (the member's answer, or its failure: the leader's call is always
            # answered, so the run stays valid history): a new message of the leader's run, stored with the turn
            answer = member.leader_result(output.content if "error" not in status
                                          else f"The member failed: {output.content or 'no answer'}")
        await arefresh_messages_media(list(history), model_media_storage())
        team = self.build_team(history)
        async for item in team.arun(
            input=answer if answer is not None else history[-1], stream=True, stream_events=True,
            yield_run_output=True, run_id=run_id, session_id=session_id, user_id=user_id,
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
            if tracker.paused:  # agno's placeholder result of a delegation to a paused member: not stored
                waiting = paused_delegations(leader.messages, tracker)
                leader.messages = [m for m in leader.messages
                                   if not (m.message.role == "tool" and m.message.tool_call_id in waiting)]
        else:
            leader.messages = billed_calls(tracker, root)
        # a member resumed by a continuation streams its own output (not listed by the leader's)
        listed = {root, *(m.run_id for m in members)}
        members += [o for o in tracker.outputs if getattr(o, "run_id", None) not in listed]
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
