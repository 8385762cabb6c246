"""An agent's conversation, rebuilt from the ledger: first message, then per turn the recorded
reply and its tool results in the order the model asked. Nothing conversational rides in messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from crewq.config.envref import is_ref, resolve
from crewq.config.errors import ConfigError
from crewq.config.limits import DEFAULT_LIMITS, Limits

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


def upstream_outputs(ledger: Ledger, spec: RunSpec, agent_id: str, stands_for: str | None = None, *,
                     task: str = "", limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    """Each upstream agent's output by its label: its id, and the id of the standby that produced it
    when one stood in for it. A standby gets the upstream of the agent it stands in for (and its own).
    Refused (ConfigError) when with the task they are over `limits.max_prompt_chars`: a fan-in of many large
    outputs would otherwise be read, joined and sent whole. Their stored sizes are checked first (UTF-8
    bytes, at most 4 a character), before anything is read."""
    deps = list(spec.crew.agent(stands_for).depends_on) if stands_for else []
    deps += [d for d in spec.crew.agent(agent_id).depends_on if d not in deps]
    pipe = ledger.redis.pipeline(transaction=False)
    for dep in deps:
        pipe.hstrlen(ledger.keys.agent(spec.run_id, dep), "output")
    stored = dict(zip(deps, pipe.execute()))
    _check_prompt(agent_id, len(task) + sum(stored.values()) // 4, stored, limits, "at least ")
    states = ledger.agents(spec.run_id, deps)
    outputs = {label(dep, states[dep]): states[dep].get("output", "") for dep in deps}
    _check_prompt(agent_id, len(task) + sum(map(len, outputs.values())), stored, limits)
    return outputs


def _check_prompt(agent_id: str, size: int, stored: dict[str, int], limits: Limits, bound: str = "") -> None:
    if size <= limits.max_prompt_chars:
        return
    largest = ", ".join(f"{dep} ({n:,} bytes)" for dep, n in sorted(stored.items(), key=lambda i: -i[1])[:3])
    raise ConfigError(f"agent {agent_id!r}'s first message (the task and the outputs of the {len(stored)} agents it "
                      f"depends on; largest: {largest}) is {bound}{size:,} characters, over the limit of "
                      f"{limits.max_prompt_chars:,} characters (policy limits.max_prompt_chars)")


def label(agent_id: str, state: dict[str, str]) -> str:
    """"researcher", or "researcher (by standby_researcher)" for an output a fallback produced."""
    by = state.get("served_by")
    return f"{agent_id} (by {by})" if by else agent_id


def rebuild(ledger: Ledger, spec: RunSpec, agent_id: str, attempt: int, turn: int,
            tool_names: set[str], env: Mapping[str, str] | None = None, stands_for: str | None = None,
            limits: Limits = DEFAULT_LIMITS) -> Conversation:
    """The messages the model sees at `turn` (turns before it are recorded and complete), and the
    turn's own reply if it is recorded. One read of the ledger for all of it.
    A crew whose `task.input` is an `env:` reference has it resolved here, in the worker, from `env`."""
    agent = spec.crew.agent(agent_id)
    task = spec.task
    # Only the crew file's own reference: a submitted input or --task that reads "env:..." is text,
    # or anyone who may submit could read the workers' environment.
    if is_ref(spec.crew.task.input) and task == spec.crew.task.input:
        task = str(resolve(task, env, key="task.input"))
    upstream = upstream_outputs(ledger, spec, agent_id, stands_for, task=task, limits=limits)
    messages = [Message(role="user", content=first_message(task, upstream))]
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
