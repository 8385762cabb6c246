"""OpenAI chat completions and every server that speaks them (vLLM, LM Studio, llama.cpp, Ollama's /v1).

POST {base_url}/v1/chat/completions (base_url: the root, .../v1 or the full endpoint: `endpoint.py`)
with `Authorization: Bearer` (only when a key is set: local servers need none). Tools go as
`functions`; the model answers with `tool_calls` whose `arguments` is a JSON string; each result
goes back as one `role: tool` message per call, in the order asked.

Compatible servers bend the format, so the reply is read defensively:
- `arguments` may be a JSON string, an object, empty or null (→ {}); invalid JSON or a non-object is
  not run: the model gets a tool error naming the problem (`tool_skipped`);
- a missing id gets `call_<call_index>_<i>`; a duplicate id gets a `_<i>` suffix;
- no `usage` → zero tokens;
- a non-empty `tool_calls` wins whatever `finish_reason` says;
- `content` may be null, a string or a list of text parts.
finish_reason `length` (no tool calls) and a refusal fail the turn, as for Anthropic. A failed tool's
result is sent as `ERROR: <message>`: this format has no is_error flag.
"""

from __future__ import annotations

import json
from typing import Any, cast

from .http import HTTPProvider, squash
from .types import LLMReply, LLMRequest, Message, ToolCall, ToolSchema, Usage


class OpenAIProvider(HTTPProvider):
    name = "openai"
    default_base_url = "https://api.openai.com"

    def complete(self, request: LLMRequest) -> LLMReply:
        if not self.config.model:
            raise self.fail(f"no model configured for {self.label} (set llm.model, e.g. gpt-4o)", "config")
        if self.label == "openai-compatible" and not self.config.base_url:
            raise self.fail("openai-compatible needs base_url: the server to send to (e.g. http://127.0.0.1:8000/v1); "
                            "use provider openai for api.openai.com", "config")
        data = self.post("/v1/chat/completions", self.headers(), self.body(request), request)
        if isinstance(data.get("error"), (dict, str)):  # some servers send their errors with a 200
            raise self.fail(f"error in a 200 reply: {_error_text(data['error'])}", "server_error")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.fail("malformed reply: no choices")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise self.fail("malformed reply: choices[0] has no message")
        calls = self.tool_calls(message.get("tool_calls"), request.call_index)
        text = _text(message.get("content"))
        finish = choices[0].get("finish_reason")
        if not calls:
            if message.get("refusal") or finish == "content_filter":
                raise self.fail(f"the model refused to answer: {squash(message.get('refusal') or finish)}", "refusal")
            if finish == "length":
                raise self.fail(f"reply cut off at the token limit (finish_reason length, max_tokens="
                                f"{self.config.max_tokens}); raise llm.max_tokens", "max_tokens")
        model = self.reply_model(data)
        return LLMReply(text=text, tool_calls=calls, usage=_usage(data.get("usage")), provider=self.label,
                        model=model, stop_reason="tool_use" if calls else "end_turn")

    def headers(self) -> dict[str, str]:
        return self.bearer_headers()

    def body(self, request: LLMRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
        messages += [wire_message(m) for m in request.messages]
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if request.tools:
            body["tools"] = wire_tools(request.tools)
        body.update(self.sampling("max_tokens"))
        return body

    def tool_calls(self, raw: Any, call_index: int) -> list[ToolCall]:
        if not raw:
            return []
        if not isinstance(raw, list):
            raise self.fail(f"malformed reply: tool_calls is a {type(raw).__name__}")
        calls: list[ToolCall] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            function = item.get("function") if isinstance(item, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name:
                raise self.fail(f"malformed reply: tool_calls[{i}] has no function name")
            ident = item.get("id")
            ident = ident if isinstance(ident, str) and ident else f"call_{call_index}_{i}"
            if ident in seen:
                ident = f"{ident}_{i}"
            seen.add(ident)
            calls.append(tool_call(ident, name, cast(dict, function).get("arguments")))  # a dict: it has a name
        return calls


def tool_call(ident: str, name: str, raw: Any, **kw: Any) -> ToolCall:
    """A ToolCall from a JSON string, an object, or nothing. Arguments that are not a JSON object do
    not fail the turn: the call carries the `problem`, is not run, and the model is told."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ToolCall(id=ident, name=name, **kw)
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return ToolCall(id=ident, name=name, problem=f"tool call {name!r} not run: its arguments are not "
                            f"valid JSON: {squash(raw)[:80]!r}; send a JSON object", **kw)
    if not isinstance(value, dict):
        return ToolCall(id=ident, name=name, problem=f"tool call {name!r} not run: its arguments are a JSON "
                        f"{type(value).__name__}, expected an object", **kw)
    return ToolCall(id=ident, name=name, arguments=value, **kw)


def wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        content = message.content if not message.is_error else f"ERROR: {message.content}"
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content or None,
                "tool_calls": [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                               for c in message.tool_calls]}
    return {"role": message.role, "content": message.content}


def wire_tools(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(input_tokens=prompt if isinstance(prompt, int) else 0,
                 output_tokens=completion if isinstance(completion, int) else 0)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return squash(str(error.get("message") or error.get("type") or error))
    return squash(str(error))
