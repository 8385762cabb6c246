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
    reply: dict | None = None  # this turn's reply, if recorded already (a redelivery does not ask again)


def upstream_outputs(ledger: Ledger, spec: RunSpec, agent_id: str) -> dict[str, str]:
    deps = spec.crew.agent(agent_id).depends_on
    states = ledger.agents(spec.run_id, deps)
    return {dep: states[dep].get("output", "") for dep in deps}


def rebuild(ledger: Ledger, spec: RunSpec, agent_id: str, attempt: int, turn: int,
            tool_names: set[str], env: Mapping[str, str] | None = None) -> Conversation:
    """The messages the model sees at `turn` (turns before it are recorded and complete), and the
    turn's own reply if it is recorded. One read of the ledger for all of it.
    A crew whose `task.input` is an `env:` reference has it resolved here, in the worker, from `env`."""
    agent = spec.crew.agent(agent_id)
    task = spec.task
    # Only the crew file's own reference: a submitted input or --task that reads "env:..." is text,
    # or anyone who may submit could read the workers' environment.
    if is_ref(spec.crew.task.input) and task == spec.crew.task.input:
        task = str(resolve(task, env, key="task.input"))
    messages = [Message(role="user", content=first_message(task, upstream_outputs(ledger, spec, agent_id)))]
    budget = ToolCallBudget(agent, tool_names)
    replies, results = ledger.history(spec.run_id, agent_id, attempt, turn)
    for t, raw in enumerate(replies[:turn]):
        if raw is None:
            raise LookupError(f"turn {t} of {agent_id} has no recorded reply")
        reply = LLMReply.model_validate(raw)
        messages.append(reply.as_message())
        for index, call in enumerate(reply.tool_calls):
            result = results.get(f"{t}:{index}")
            if result is None:
                raise LookupError(f"tool call {call.name} of turn {t} of {agent_id} has no recorded result")
            if not result.get("skipped"):
                budget.count(call)
            messages.append(Message(role="tool", tool_call_id=call.id, name=call.name,
                                    content=result["content"], is_error=bool(result.get("is_error"))))
    return Conversation(messages, budget, replies[turn])
