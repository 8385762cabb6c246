"""`summarise`: a summary written by an LLM, through crewq's own providers (Routex's tool).

    tools:
      - name: summarise
        api_key: env:ANTHROPIC_API_KEY
        extra: {provider: anthropic, model: claude-haiku-4-5}   # these are the defaults; any provider works

The model passes `text` and optionally `max_words` (200 by default). The call is one LLM request
with the tool's timeout; its failure (a refused key, a timeout) goes back to the model as the
tool's error. The call takes the agent's path (`tool_llm`): the fleet policy decides where the key
and the request may go (`env:OPENAI_API_KEY` only to api.openai.com by default, no private
address), fleet limits and breakers apply, the run's budgets stop it and its tokens count as the run's.
"""

from __future__ import annotations

from typing import Any

from crewq.config.envref import ref_name
from crewq.config.errors import ConfigError, ProviderError, ToolError
from crewq.config.policy import policy_of
from crewq.config.schema import Agent

from ..llm.types import LLMConfig, LLMRequest, Message
from .base import Tool, ToolContext

DEFAULT_PROVIDER, DEFAULT_MODEL = "anthropic", "claude-haiku-4-5"
MAX_INPUT_CHARS = 200_000
_NO_AGENT = Agent(id="summarise")  # the provider factories take an agent; only `scripted` reads it


class Summarise(Tool):
    name = "summarise"
    description = "Summarise a text in at most max_words words (200 by default), keeping the key facts."
    timeout = 90.0
    parameters = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
            "max_words": {"type": "integer", "minimum": 10, "maximum": 2000},
        },
        "required": ["text"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        provider_name = str(self.setting(self.spec.extra.get("provider", DEFAULT_PROVIDER), context, "extra.provider"))
        config = LLMConfig(provider=provider_name,
                           model=str(self.setting(self.spec.extra.get("model", DEFAULT_MODEL), context, "extra.model")),
                           api_key=self.setting(self.spec.api_key, context, "api_key"),
                           base_url=self.setting(self.spec.extra.get("base_url"), context, "extra.base_url"),
                           max_tokens=int(self.spec.extra.get("max_tokens", 1024)),
                           # the fleet policy's say on where the key and the request may go, as for an agent
                           policy=policy_of(context.env), key_var=ref_name(self.spec.api_key))
        words = int(arguments.get("max_words") or 200)
        request = LLMRequest(system=f"Summarise the user's text in at most {words} words. Keep names, figures and "
                                    "conclusions; add nothing that is not in the text. Answer with the summary only.",
                             messages=[Message(role="user", content=arguments["text"])],
                             timeout=self.timeout * 0.9, run_id=context.run_id, agent_id=context.agent_id)
        try:
            from ..tool_llm import local_llm  # (the worker's path imports the ledger: not at registry load)
            reply = (context.llm or local_llm)(config, _NO_AGENT, request)
        except (ProviderError, ConfigError) as exc:
            raise ToolError(f"the summarising LLM ({provider_name}/{config.model}) failed: {exc}") from None
        return {"summary": reply.text.strip(), "model": reply.model or config.model,
                "input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens}
