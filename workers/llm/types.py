"""Provider-neutral messages, requests and replies. Providers translate these to their wire format.

History is a list of `Message`s: the user's task, then per turn the assistant's reply and one
`tool` message per tool call, in the order the model asked for them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crewq.config.policy import Policy


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    # Provider state that must go back with the call in later turns (Gemini's thoughtSignature).
    signature: str | None = None
    problem: str | None = None  # why it cannot run (arguments not a JSON object): the model is told


class Message(BaseModel):
    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)  # assistant only
    tool_call_id: str | None = None  # tool only
    name: str | None = None  # tool only: the tool's name
    is_error: bool = False  # tool only



def in_asked_order(results: list[Message], asked: list[ToolCall]) -> list[Message]:
    """Tool results in the order the model asked for the calls (results of unknown calls last)."""
    order: dict[str | None, int] = {c.id: i for i, c in enumerate(asked)}
    return sorted(results, key=lambda r: order.get(r.tool_call_id, len(order)))

class ToolSchema(BaseModel):
    """What the model is told about a tool: the full JSON Schema of its parameters."""
    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class LLMConfig(BaseModel):
    """One agent's LLM settings with `env:` references already resolved (worker memory only)."""
    model_config = ConfigDict(frozen=True)
    provider: str
    model: str | None = None
    api_key: str | None = Field(None, repr=False)
    base_url: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # The fleet policy's say on where the request may go (None: a local caller, no policy), and the
    # variable the key came from, whose hosts the policy binds.
    policy: Policy | None = Field(None, repr=False, exclude=True)
    key_var: str | None = None


class LLMRequest(BaseModel):
    system: str
    messages: list[Message]
    tools: list[ToolSchema] = Field(default_factory=list)
    timeout: float = 120.0  # seconds for the whole call; enforced by the provider, not by Celery
    # Who is asking; the scripted provider picks its reply by (agent_id, call_index).
    run_id: str = ""
    agent_id: str = ""
    call_index: int = 0


class LLMReply(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: str = "end_turn"
    provider: str = ""
    model: str | None = None

    def as_message(self) -> Message:
        return Message(role="assistant", content=self.text, tool_calls=self.tool_calls)
