"""An LLM call made by a tool (`summarise`) for an agent: the agent's own path, so a tool is no way
around the fleet's rules. The call goes through `call_llm` (fleet limits, the breaker, the policy's
outbound check on the key's hosts and the address guard, which the config carries), is refused once
the run's budget is spent, and its tokens and cost count into the run's and the agent's usage."""

from __future__ import annotations

from typing import Callable

from crewq.config.errors import ToolError
from crewq.config.schema import Agent, TaskSpec

from . import budgets
from .ledger import Ledger
from .llm.dispatch import call_llm
from .llm.limits import Throttled
from .llm.pricing import estimate_cost
from .llm.types import LLMConfig, LLMReply, LLMRequest

# What a tool is handed to make an LLM call: (config, the agent spec a provider factory reads, request).
LLMCall = Callable[[LLMConfig, Agent, LLMRequest], LLMReply]


def local_llm(config: LLMConfig, agent: Agent, request: LLMRequest) -> LLMReply:
    """A tool run outside a worker (a test, a local script): the policy the config carries still applies."""
    return call_llm([config], agent, request)


def run_llm(ledger: Ledger, run_id: str, agent_id: str, task_budgets: TaskSpec) -> LLMCall:
    """The LLM call of a tool run by `agent_id` in `run_id` (`task_budgets`: the crew's `task:`)."""
    def ask(config: LLMConfig, agent: Agent, request: LLMRequest) -> LLMReply:
        if reason := budgets.exhausted(task_budgets, ledger.run(run_id)):
            raise ToolError(reason)
        try:
            reply = call_llm([config], agent, request, redis=ledger.redis, prefix=ledger.keys.prefix)
        except Throttled as exc:  # a tool cannot wait in its queue as a turn does: the model may try again later
            raise ToolError(f"fleet limit: {exc}") from None
        ledger.add_usage(run_id, agent_id, reply.usage.input_tokens, reply.usage.output_tokens,
                         estimate_cost(reply.provider or config.provider, reply.model or config.model, reply.usage))
        return reply
    return ask
