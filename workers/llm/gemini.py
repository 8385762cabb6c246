"""Google's Gemini API over plain httpx: POST {base_url}/v1beta/models/{model}:generateContent.

Wire format: the key travels in the `x-goog-api-key` header (never in the URL, which logs keep);
the system prompt is `systemInstruction`; the history is `contents` of `user` and `model` turns made
of `parts`; tools are one `{functionDeclarations: [...]}`. The model asks for tools with
`functionCall` parts (several in one reply run at once; `id` may be absent, so we name them
`gemini_<call_index>_<i>`), and every result of a turn goes back together in the next `user` turn as
`functionResponse` parts, in the order asked: `{"output": ...}`, or `{"error": ...}` for a failed
tool (the keys the API documents for a function's output and its error details).
A `thoughtSignature` on a call is the model's own state (Gemini 3 requires it back): it is kept on
the recorded call and sent back with it. Temperature and max_tokens go in `generationConfig`.

finishReason (with no functionCall part; calls always win):
    STOP                                  the answer
    MAX_TOKENS                            ProviderError (error_type max_tokens); raise llm.max_tokens
    SAFETY, RECITATION, BLOCKLIST,        ProviderError naming the reason (error_type refusal)
    PROHIBITED_CONTENT, SPII, IMAGE_SAFETY
    anything else (MALFORMED_FUNCTION_CALL, ProviderError naming the reason and `finishMessage`
    OTHER, LANGUAGE, ...)                 (error_type stop_reason)
A prompt refused before any candidate (`promptFeedback.blockReason`) is a refusal too. Usage comes
from `usageMetadata`: `promptTokenCount` in, `candidatesTokenCount + thoughtsTokenCount` out
(thinking is billed as output but not counted in candidates). Errors arrive as
`{"error": {"code", "message", "status", "details"}}`; the shared HTTP layer maps them (429 and 5xx
retried); a 429 says how long to wait in `details[].retryDelay` (google.rpc.RetryInfo), not in a header.
"""

from __future__ import annotations

import json
from typing import Any, cast

import httpx

from crewq.config.errors import ProviderError, TransientProviderError

from .http import HTTPProvider, squash
from .openai import tool_call
from .types import LLMReply, LLMRequest, Message, ToolCall, ToolSchema, Usage, in_asked_order

# The fields of Gemini's `Schema` (a subset of OpenAPI 3.0; ai.google.dev/api/caching#Schema). The API
# parses `parameters` as that message, so any other key ($schema, additionalProperties, $defs, allOf, not,
# const, examples, propertyNames, patternProperties, ...) fails the request with a 400 "Unknown name ...
# Cannot find field". We keep only these, after inlining $refs and rewriting the unions it can express.
SCHEMA_FIELDS = frozenset({"type", "format", "title", "description", "nullable", "enum", "items", "minItems",
                           "maxItems", "properties", "required", "minProperties", "maxProperties",
                           "propertyOrdering", "minLength", "maxLength", "pattern", "minimum", "maximum",
                           "example", "default", "anyOf"})
MAX_REF_DEPTH = 8  # a recursive $ref stops here, as an untyped value
REFUSALS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


class GeminiProvider(HTTPProvider):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def complete(self, request: LLMRequest) -> LLMReply:
        if not self.config.model:
            raise self.fail("no model configured (set llm.model, e.g. gemini-2.5-flash)", "config")
        model = self.config.model.removeprefix("models/")  # the form models.list prints
        data = self.post(f"/v1beta/models/{model}:generateContent", self.headers(), self.body(request), request)
        feedback = cast(dict, data.get("promptFeedback")) if isinstance(data.get("promptFeedback"), dict) else {}
        candidates = data.get("candidates")
        if feedback.get("blockReason") and not candidates:
            raise self.fail(f"the prompt was blocked ({feedback['blockReason']})", "refusal")
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            raise self.fail("malformed reply: no candidates")
        candidate = candidates[0]
        content = cast(dict, candidate.get("content")) if isinstance(candidate.get("content"), dict) else {}
        parts = cast(list, content.get("parts")) if isinstance(content.get("parts"), list) else []
        calls = self.tool_calls(parts, request.call_index)
        text = "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
                       and not p.get("thought"))
        if not calls:
            self._check_finish(candidate.get("finishReason"), candidate.get("finishMessage"), parts)
        version = data.get("modelVersion")
        return LLMReply(text=text, tool_calls=calls, usage=_usage(data.get("usageMetadata")), provider=self.label,
                        model=version if isinstance(version, str) and version else model,
                        stop_reason="tool_use" if calls else "end_turn")

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key
        return headers

    def body(self, request: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": wire_contents(request.messages)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [wire_function(t) for t in request.tools]}]
        config = self.sampling("maxOutputTokens")
        if config:
            body["generationConfig"] = config
        return body

    def tool_calls(self, parts: list[Any], call_index: int) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for part in parts:
            call = part.get("functionCall") if isinstance(part, dict) else None
            if call is None:
                continue
            name = call.get("name") if isinstance(call, dict) else None
            if not isinstance(name, str) or not name:
                raise self.fail(f"malformed reply: functionCall {len(calls)} has no name")
            ident = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
            signature = part.get("thoughtSignature")
            calls.append(tool_call(ident or f"gemini_{call_index}_{len(calls)}", name, call.get("args"),
                                   signature=signature if isinstance(signature, str) else None))
        return calls

    def _check_finish(self, finish: Any, message: Any, parts: list[Any]) -> None:
        """A reply with no call is an answer only if the model stopped by itself and said something."""
        why = f" ({squash(message)[:200]})" if isinstance(message, str) and message.strip() else ""
        if finish in REFUSALS:
            raise self.fail(f"the model stopped without an answer (finishReason {finish}){why}", "refusal")
        if finish == "MAX_TOKENS":
            raise self.fail(f"reply cut off at the token limit (finishReason MAX_TOKENS, maxOutputTokens="
                            f"{self.config.max_tokens}); raise llm.max_tokens", "max_tokens")
        if finish not in ("STOP", None):
            raise self.fail(f"the model stopped without an answer (finishReason {finish}){why}", "stop_reason")
        if not parts:
            raise self.fail(f"malformed reply: a candidate with no parts (finishReason {finish})")

    def _status_error(self, response: httpx.Response, url: str) -> ProviderError:
        # The shared mapping decides; we only add the wait that Gemini writes in the body, not a header.
        error = super()._status_error(response, url)
        if isinstance(error, TransientProviderError) and error.retry_after is None:
            error.retry_after = retry_delay(response.content)
        return error


def retry_delay(content: bytes) -> float | None:
    """Seconds from a google.rpc.RetryInfo in the error's details ("37s", "1.5s"); None if absent."""
    try:
        details = json.loads(content)["error"]["details"]
    except (ValueError, TypeError, KeyError):
        return None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            try:
                return max(float(str(detail.get("retryDelay", "")).removesuffix("s")), 0.0)
            except ValueError:
                return None
    return None


def wire_contents(history: list[Message]) -> list[dict[str, Any]]:
    """user/model turns; a turn's tool results go together in one user turn, in the order asked."""
    contents: list[dict[str, Any]] = []
    asked: list[ToolCall] = []
    results: list[Message] = []

    def flush() -> None:
        if results:
            contents.append({"role": "user", "parts": [wire_result(r, asked) for r in in_asked_order(results, asked)]})
            results.clear()

    for message in history:
        if message.role == "tool":
            results.append(message)
            continue
        flush()
        if message.role == "assistant":
            asked = list(message.tool_calls)
            parts: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
            parts += [wire_call(c) for c in message.tool_calls]
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        else:
            contents.append({"role": "user", "parts": [{"text": message.content}]})
    flush()
    return contents


def wire_call(call: ToolCall) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
    if not call.id.startswith("gemini_"):  # an id the model gave: it wants it back
        part["functionCall"]["id"] = call.id
    if call.signature:
        part["thoughtSignature"] = call.signature
    return part


def wire_result(result: Message, asked: list[ToolCall]) -> dict[str, Any]:
    name = result.name or next((c.name for c in asked if c.id == result.tool_call_id), "")
    response = {"error": result.content} if result.is_error else {"output": result.content}
    part: dict[str, Any] = {"functionResponse": {"name": name, "response": response}}
    if result.tool_call_id and not result.tool_call_id.startswith("gemini_"):
        part["functionResponse"]["id"] = result.tool_call_id
    return part


def wire_function(tool: ToolSchema) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name, "description": tool.description}
    parameters = gemini_schema(tool.parameters)
    if parameters.get("properties"):  # Gemini rejects an object schema with no properties
        declaration["parameters"] = parameters
    return declaration


def gemini_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema as Gemini's Schema: local $refs inlined, unions as anyOf/nullable, other keys dropped."""
    if not isinstance(schema, dict):
        return {}
    if defs is None:
        defs = {**_dict(schema.get("definitions")), **_dict(schema.get("$defs"))}
    if isinstance(schema.get("$ref"), str):
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name) if depth < MAX_REF_DEPTH else None
        schema = {**_dict(target), **{k: v for k, v in schema.items() if k != "$ref"}}  # siblings win
        depth += 1
    out: dict[str, Any] = {}
    allowed = ""
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):  # property names are kept as they are
            out[key] = {name: gemini_schema(sub, defs, depth) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = gemini_schema(value, defs, depth)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):  # anyOf is the only union Gemini has
            out["anyOf"] = [gemini_schema(sub, defs, depth) for sub in value]
        elif key in ("enum", "const"):  # Gemini's enum is a list of non-empty strings, for strings only
            values = value if key == "enum" and isinstance(value, list) else [value]
            if None in values:
                out["nullable"] = True
            values = [v for v in values if v is not None and v != ""]
            if values and all(isinstance(v, str) for v in values):
                out["enum"] = values
            elif values:  # numbers or booleans: said in words; the tool's own schema check still holds
                allowed = f"one of: {', '.join(json.dumps(v) for v in values)}"
        elif key in SCHEMA_FIELDS:
            out[key] = value
    if allowed:
        out["description"] = f"{out['description']} ({allowed})" if out.get("description") else allowed
    return _nullable(out)


def _nullable(out: dict[str, Any]) -> dict[str, Any]:
    """`type: [x, "null"]` and `anyOf: [x, {type: null}]` (pydantic's Optional) as `nullable`."""
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        del out["type"]
        if len(types) == 1:
            out["type"] = types[0]
        elif types:
            out.setdefault("anyOf", [{"type": t} for t in types])
    if isinstance(out.get("anyOf"), list):
        members = [m for m in out["anyOf"] if m != {"type": "null"}]
        if len(members) < len(out["anyOf"]):
            out["nullable"] = True
        rest = {k: v for k, v in out.items() if k != "anyOf"}
        out = {**members[0], **rest} if len(members) == 1 else {**rest, "anyOf": members} if members else rest
    if "required" in out:  # names that are not properties fail the request
        names = _dict(out.get("properties"))
        required = [r for r in out["required"] if r in names] if isinstance(out["required"], list) else []
        out.pop("required")
        if required:
            out["required"] = required
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    ints = {k: v for k, v in raw.items() if isinstance(v, int) and v >= 0}
    return Usage(input_tokens=ints.get("promptTokenCount", 0),
                 output_tokens=ints.get("candidatesTokenCount", 0) + ints.get("thoughtsTokenCount", 0))
