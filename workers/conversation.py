"""An agent's conversation, rebuilt from the ledger: first message, then per turn the recorded
reply and its tool results in the order the model asked. Nothing conversational rides in messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from crewq.config.envref import is_ref, resolve

from .guards import ToolCallBudget
from .ledger import Ledger
from .llm.types import LLMReply, Message
from .prompts import first_message
from .runspec import RunSpec


@dataclass
class Conversation:
    messages: list[Message]
    budget: ToolCallBudget


def upstream_outputs(ledger: Ledger, spec: RunSpec, agent_id: str, stands_for: str | None = None) -> dict[str, str]:
    """Each upstream agent's output by its label: its id, and the id of the standby that produced it
    when one stood in for it. A standby gets the upstream of the agent it stands in for (and its own)."""
    deps = list(spec.crew.agent(stands_for).depends_on) if stands_for else []
    deps += [d for d in spec.crew.agent(agent_id).depends_on if d not in deps]
    states = ledger.agents(spec.run_id, deps)
    return {label(dep, states[dep]): states[dep].get("output", "") for dep in deps}


def label(agent_id: str, state: dict[str, str]) -> str:
    """"researcher", or "researcher (by standby_researcher)" for an output a fallback produced."""
    by = state.get("served_by")
    return f"{agent_id} (by {by})" if by else agent_id


def rebuild(ledger: Ledger, spec: RunSpec, agent_id: str, attempt: int, turn: int,
            tool_names: set[str], env: Mapping[str, str] | None = None, stands_for: str | None = None) -> Conversation:
    """The messages the model sees at `turn` (turns before it are recorded and complete).
    A crew whose `task.input` is an `env:` reference has it resolved here, in the worker, from `env`."""
    agent = spec.crew.agent(agent_id)
    task = spec.task
    # Only the crew file's own reference: a submitted input or --task that reads "env:..." is text,
    # or anyone who may submit could read the workers' environment.
    if is_ref(spec.crew.task.input) and task == spec.crew.task.input:
        task = str(resolve(task, env, key="task.input"))
    messages = [Message(role="user", content=first_message(task, upstream_outputs(ledger, spec, agent_id, stands_for)))]
    budget = ToolCallBudget(agent, tool_names)
    for t, raw in enumerate(ledger.replies(spec.run_id, agent_id, attempt, turn)):
        if raw is None:
            raise LookupError(f"turn {t} of {agent_id} has no recorded reply")
        reply = LLMReply.model_validate(raw)
        messages.append(reply.as_message())
        results = ledger.results(spec.run_id, agent_id, attempt, t, len(reply.tool_calls))
        for call, result in zip(reply.tool_calls, results):
            if result is None:
                raise LookupError(f"tool call {call.name} of turn {t} of {agent_id} has no recorded result")
            if not result.get("skipped"):
                budget.count(call)
            messages.append(Message(role="tool", tool_call_id=call.id, name=call.name,
                                    content=result["content"], is_error=bool(result.get("is_error"))))
    return Conversation(messages, budget)
