"""Anthropic Messages API over plain httpx: POST {base_url}/v1/messages (base_url: root or full endpoint).

Wire format: the system prompt is a top-level `system`; tools carry an `input_schema`; the model
answers with content blocks (`text`, `tool_use`, several tool_use blocks in one reply). Every
`tool_result` of a turn goes back together in the next user message, in the order the model asked
for them, with `is_error` for a failed tool.

stop_reason:
    end_turn, stop_sequence      the answer
    tool_use                     tool calls (a reply saying tool_use with no tool_use block is malformed)
    pause_turn                   a server-side loop paused: we send the content back and continue,
                                 at most `MAX_CONTINUATIONS` times, within the same `complete()`
    max_tokens                   a clear ProviderError (error_type max_tokens), not a continuation: a
    model_context_window_exceeded cut-off answer or a half-written tool call is never passed on as
                                 output; the fix is a larger `llm.max_tokens`
    refusal                      ProviderError (error_type refusal): a refusal is not an answer
"""

from __future__ import annotations

from typing import Any

from .http import HTTPProvider
from .types import LLMReply, LLMRequest, Message, ToolCall, Usage

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens
MAX_CONTINUATIONS = 3


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def complete(self, request: LLMRequest) -> LLMReply:
        body = self.body(request)
        blocks: list[dict[str, Any]] = []
        usage = Usage()
        for _ in range(MAX_CONTINUATIONS + 1):
            data = self.post("/v1/messages", self.headers(), body, request)
            content = data.get("content")
            if not isinstance(content, list):
                raise self.fail("malformed reply: no content list", request_id=data.get("id"))
            blocks += [b for b in content if isinstance(b, dict)]
            usage = _add(usage, data.get("usage"))
            stop = data.get("stop_reason")
            if stop != "pause_turn":
                return self._reply(data, blocks, usage, stop)
            # Continue a paused turn: the paused content goes back as the assistant's message.
            body = {**body, "messages": body["messages"] + [{"role": "assistant", "content": content}]}
        raise self.fail(f"turn still paused after {MAX_CONTINUATIONS} continuations", "pause_turn")

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def body(self, request: LLMRequest) -> dict[str, Any]:
        if not self.config.model:
            raise self.fail("no model configured (set llm.model)", "config")
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": wire_messages(request.messages),
        }
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                             for t in request.tools]
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return body

    def _reply(self, data: dict[str, Any], blocks: list[dict[str, Any]], usage: Usage, stop: Any) -> LLMReply:
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str))
        calls = [self._tool_call(b) for b in blocks if b.get("type") == "tool_use"]
        if stop in ("max_tokens", "model_context_window_exceeded"):
            raise self.fail(f"reply cut off at the token limit ({stop}, max_tokens="
                            f"{self.config.max_tokens or DEFAULT_MAX_TOKENS}); raise llm.max_tokens", "max_tokens")
        if stop == "refusal":
            raise self.fail("the model refused to answer (stop_reason refusal)", "refusal")
        if stop == "tool_use" and not calls:
            raise self.fail("malformed reply: stop_reason tool_use without a tool_use block")
        if stop not in ("end_turn", "stop_sequence", "tool_use", None) and not calls:
            raise self.fail(f"unexpected stop_reason {stop!r}", "stop_reason")
        model = self.reply_model(data)
        return LLMReply(text=text, tool_calls=calls, usage=usage, provider=self.label, model=model,
                        stop_reason="tool_use" if calls else "end_turn")

    def _tool_call(self, block: dict[str, Any]) -> ToolCall:
        ident, name, args = block.get("id"), block.get("name"), block.get("input", {})
        if not isinstance(ident, str) or not isinstance(name, str) or not isinstance(args, dict):
            raise self.fail(f"malformed tool_use block (id={ident!r}, name={name!r}, input {type(args).__name__})")
        return ToolCall(id=ident, name=name, arguments=args)


def wire_messages(history: list[Message]) -> list[dict[str, Any]]:
    """Our history as Anthropic turns: tool results grouped into one user message, in asked order."""
    out: list[dict[str, Any]] = []
    for message in history:
        if message.role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in message.tool_calls]
            out.append({"role": "assistant", "content": blocks or message.content})
        elif message.role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id,
                                      "content": message.content}
            if message.is_error:
                result["is_error"] = True
            _user_blocks(out).append(result)
        else:
            _user_blocks(out).append({"type": "text", "text": message.content})
    asked: list[str] = []  # tool_use ids of the assistant turn before, in the model's order
    for turn in out:  # tool_result blocks first, in the order the model asked, then any text
        if turn["role"] == "assistant":
            blocks = turn["content"] if isinstance(turn["content"], list) else []
            asked = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        else:
            turn["content"].sort(key=lambda b: _order(b, asked))
    return [_simplify(turn) for turn in out]


def _user_blocks(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The content list of the trailing user message, opened if the last turn is not a user's."""
    if not out or out[-1]["role"] != "user":
        out.append({"role": "user", "content": []})
    return out[-1]["content"]


def _order(block: dict[str, Any], asked: list[str]) -> tuple[int, int]:
    if block["type"] != "tool_result":
        return (1, 0)
    ident = block["tool_use_id"]
    return (0, asked.index(ident) if ident in asked else len(asked))


def _simplify(turn: dict[str, Any]) -> dict[str, Any]:
    content = turn["content"]
    if turn["role"] == "user" and len(content) == 1 and content[0]["type"] == "text":
        return {"role": "user", "content": content[0]["text"]}
    return turn


def _add(usage: Usage, raw: Any) -> Usage:
    """Input tokens include cache writes and reads (billed as input; see pricing)."""
    if not isinstance(raw, dict):
        return usage
    ints = {k: v for k, v in raw.items() if isinstance(v, int)}
    input_tokens = (ints.get("input_tokens", 0) + ints.get("cache_creation_input_tokens", 0)
                    + ints.get("cache_read_input_tokens", 0))
    return Usage(input_tokens=usage.input_tokens + input_tokens,
                 output_tokens=usage.output_tokens + ints.get("output_tokens", 0))
