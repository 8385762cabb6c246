"""The offline `scripted` provider: plays each agent's `script:` from the crew file.

Step N of an agent's script answers that agent's N-th LLM call in the run (all attempts
counted), so an injected error followed by a reply plays as "fail, then succeed". It fails loudly
when the script runs out. It serves the tests, the demo and the benchmarks; no network.
"""

from __future__ import annotations

import json
import time

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.config.schema import ScriptError, ScriptStep

from .base import Provider
from .types import LLMConfig, LLMReply, LLMRequest, ToolCall, Usage

TRANSIENT_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}


class ScriptedProvider(Provider):
    name = "scripted"

    def __init__(self, config: LLMConfig, script: list[ScriptStep]):
        super().__init__(config)
        self.script = script

    def complete(self, request: LLMRequest) -> LLMReply:
        if request.call_index >= len(self.script):
            raise ProviderError(
                f"script for agent {request.agent_id!r} ran out: call {request.call_index + 1} asked, "
                f"{len(self.script)} scripted", provider=self.name, error_type="script_exhausted")
        step = self.script[request.call_index]
        if step.latency:
            time.sleep(min(step.latency, request.timeout))
        if step.error is not None:
            raise self._error(step.error)
        calls = [ToolCall(id=f"call_{request.call_index}_{i}", name=c.name, arguments=c.arguments)
                 for i, c in enumerate(step.tool_calls)]
        text = _fill(step.text or "", request)
        usage = Usage(input_tokens=step.input_tokens or _estimate(request),
                      output_tokens=step.output_tokens or max(1, len(text) // 4))
        return LLMReply(text=text, tool_calls=calls, usage=usage, provider=self.name,
                        model=self.config.model or "scripted",
                        stop_reason="tool_use" if calls else "end_turn")

    def _error(self, error: ScriptError | str) -> ProviderError:
        if error == "crash":
            return ProviderError("scripted crash", provider=self.name, error_type="crash")
        assert isinstance(error, ScriptError)
        if error.status in TRANSIENT_STATUSES:
            return TransientProviderError(error.message, provider=self.name, status=error.status,
                                          retry_after=error.retry_after, error_type="scripted")
        return ProviderError(error.message, provider=self.name, status=error.status, error_type="scripted")


def _fill(text: str, request: LLMRequest) -> str:
    """`{input}`: the agent's first message; `{tool_results}`: the results since its last reply, in order.
    They let a script show what the model was given, which is how tests see it."""
    if "{input}" in text and request.messages:
        text = text.replace("{input}", request.messages[0].content)
    if "{tool_results}" in text:
        tail = []
        for message in reversed(request.messages):
            if message.role != "tool":
                break
            tail.append(message.content)
        text = text.replace("{tool_results}", "|".join(reversed(tail)))
    return text


def _estimate(request: LLMRequest) -> int:
    """A rough token count (4 characters a token) so that usage is never zero."""
    size = len(request.system) + sum(len(m.content) + len(json.dumps([c.arguments for c in m.tool_calls]))
                                     for m in request.messages)
    return max(1, size // 4)
