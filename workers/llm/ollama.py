"""Ollama's native chat API: POST {base_url}/api/chat with `stream: false`.

Tools are declared as OpenAI-style functions; the model answers with `message.tool_calls` whose
`arguments` is an object (a JSON string is accepted too) and which carry no ids, so we name them
`ollama_<call_index>_<i>`. Each result goes back as `role: tool` with `tool_name`, one per call,
in the order asked. Temperature and max_tokens travel as `options.temperature` / `options.num_predict`.
`done_reason: length` with no tool call fails the turn (error_type max_tokens). Usage comes from
`prompt_eval_count` and `eval_count`. No API key is needed; one that is set goes as a Bearer token
(for Ollama behind an authenticating proxy).
"""

from __future__ import annotations

from typing import Any, cast

from .http import HTTPProvider
from .openai import tool_call, wire_tools
from .types import LLMReply, LLMRequest, Message, ToolCall, Usage, in_asked_order


class OllamaProvider(HTTPProvider):
    name = "ollama"
    default_base_url = "http://localhost:11434"

    def complete(self, request: LLMRequest) -> LLMReply:
        data = self.post("/api/chat", self.headers(), self.body(request), request)
        if isinstance(data.get("error"), str):
            raise self.fail(f"error in a 200 reply: {data['error']}", "server_error")
        message = data.get("message")
        if not isinstance(message, dict):
            raise self.fail("malformed reply: no message")
        calls = self.tool_calls(message.get("tool_calls"), request.call_index)
        content = message.get("content")
        if not calls and data.get("done_reason") == "length":
            raise self.fail(f"reply cut off at the token limit (done_reason length, num_predict="
                            f"{self.config.max_tokens}); raise llm.max_tokens", "max_tokens")
        usage = Usage(input_tokens=_int(data.get("prompt_eval_count")), output_tokens=_int(data.get("eval_count")))
        model = self.reply_model(data)
        return LLMReply(text=content if isinstance(content, str) else "", tool_calls=calls, usage=usage,
                        provider=self.label, model=model, stop_reason="tool_use" if calls else "end_turn")

    def headers(self) -> dict[str, str]:
        return self.bearer_headers()

    def body(self, request: LLMRequest) -> dict[str, Any]:
        if not self.config.model:
            raise self.fail("no model configured (set llm.model)", "config")
        messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
        messages += [wire_message(m) for m in asked_order(request.messages)]
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, "stream": False}
        if request.tools:
            body["tools"] = wire_tools(request.tools)
        options = self.sampling("num_predict")
        if options:
            body["options"] = options
        return body

    def tool_calls(self, raw: Any, call_index: int) -> list[ToolCall]:
        if not raw:
            return []
        if not isinstance(raw, list):
            raise self.fail(f"malformed reply: tool_calls is a {type(raw).__name__}")
        calls = []
        for i, item in enumerate(raw):
            function = item.get("function") if isinstance(item, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name:
                raise self.fail(f"malformed reply: tool_calls[{i}] has no function name")
            calls.append(tool_call(f"ollama_{call_index}_{i}", name, cast(dict, function).get("arguments")))  # a dict: has a name
        return calls


def asked_order(history: list[Message]) -> list[Message]:
    """Each run of tool results sorted as the assistant asked: here results match calls by position."""
    out: list[Message] = []
    asked: list[ToolCall] = []
    results: list[Message] = []

    def flush() -> None:
        out.extend(in_asked_order(results, asked))
        results.clear()

    for message in history:
        if message.role == "tool":
            results.append(message)
            continue
        flush()
        if message.role == "assistant":
            asked = list(message.tool_calls)
        out.append(message)
    flush()
    return out


def wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        content = message.content if not message.is_error else f"ERROR: {message.content}"
        return {"role": "tool", "tool_name": message.name or "", "content": content}
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content,
                "tool_calls": [{"function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls]}
    return {"role": message.role, "content": message.content}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
