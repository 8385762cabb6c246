"""The gemini provider against a local generateContent server."""

from __future__ import annotations

import pytest

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.workers.llm.gemini import MAX_REF_DEPTH, GeminiProvider, gemini_schema, wire_function
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message, ToolSchema

from fakes.llm_servers import FakeLLMServer, Reply, gemini_error, gemini_generate

KEY = "AIza-fake-gemini-key-7f3e"


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def provider(server: FakeLLMServer, **kw) -> GeminiProvider:
    return GeminiProvider(LLMConfig(provider="gemini", model="gemini-2.5-flash", base_url=server.url,
                                    api_key=KEY, **kw))


def request(messages: list[Message] | None = None) -> LLMRequest:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "additionalProperties": False,
              "properties": {"city": {"type": "string", "description": "a city"},
                             "when": {"type": "object", "additionalProperties": False,
                                      "properties": {"day": {"type": "string"}}}},
              "required": ["city"]}
    tools = [ToolSchema(name="weather", description="Weather", parameters=schema),
             ToolSchema(name="now", description="The time", parameters={"type": "object", "properties": {}})]
    return LLMRequest(system="sys", messages=messages or [Message(role="user", content="go")], tools=tools,
                      call_index=3)


def test_several_function_calls_and_their_results_round_trip(server):
    server.queue(Reply(body=gemini_generate(calls=[("weather", {"city": "Paris"}, "sig-A"),
                                                   ("weather", {"city": "Oslo"})])))
    reply = provider(server, temperature=0.3, max_tokens=200).complete(request())
    assert [(c.id, c.name, c.arguments, c.signature) for c in reply.tool_calls] == [
        ("gemini_3_0", "weather", {"city": "Paris"}, "sig-A"), ("gemini_3_1", "weather", {"city": "Oslo"}, None)]
    assert reply.stop_reason == "tool_use" and (reply.usage.input_tokens, reply.usage.output_tokens) == (30, 8)

    sent = server.received[0]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY and "key=" not in sent.path
    assert sent.body["systemInstruction"] == {"parts": [{"text": "sys"}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "go"}]}]
    assert sent.body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 200}
    weather, now = sent.body["tools"][0]["functionDeclarations"]
    assert weather["parameters"] == {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "a city"},
        "when": {"type": "object", "properties": {"day": {"type": "string"}}}}}
    assert now == {"name": "now", "description": "The time"}  # no properties: no parameters

    # The results come back out of order; Gemini gets them together, in the order asked.
    history = [Message(role="user", content="go"), reply.as_message(),
               Message(role="tool", tool_call_id="gemini_3_1", name="weather", content="cold", is_error=True),
               Message(role="tool", tool_call_id="gemini_3_0", name="weather", content="mild")]
    server.queue(Reply(body=gemini_generate(text="Paris is mild.")))
    assert provider(server).complete(request(history)).text == "Paris is mild."
    contents = server.received[1].body["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-A"},
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]}
    assert contents[2:] == [{"role": "user", "parts": [
        {"functionResponse": {"name": "weather", "response": {"output": "mild"}}},
        {"functionResponse": {"name": "weather", "response": {"error": "cold"}}}]}]


def test_ids_the_model_gives_go_back_with_calls_and_results(server):
    data = gemini_generate(calls=[("now", {})])
    data["candidates"][0]["content"]["parts"][0]["functionCall"]["id"] = "fc-91"
    server.queue(Reply(body=data), Reply(body=gemini_generate(text="noon")))
    reply = provider(server).complete(request())
    history = [Message(role="user", content="go"), reply.as_message(),
               Message(role="tool", tool_call_id="fc-91", name="now", content="12:00")]
    provider(server).complete(request(history))
    contents = server.received[1].body["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "now", "args": {}, "id": "fc-91"}}]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "now", "id": "fc-91",
                                                          "response": {"output": "12:00"}}}]


def test_plain_text_with_usage_thoughts_left_out_of_the_text(server):
    data = gemini_generate(text="The answer.", usage=(40, 6), thoughts=25)
    data["candidates"][0]["content"]["parts"].insert(0, {"text": "thinking...", "thought": True})
    server.queue(Reply(body=data))
    reply = GeminiProvider(LLMConfig(provider="gemini", model="models/gemini-2.5-flash", base_url=server.url,
                                     api_key=KEY)).complete(request())
    assert (reply.text, reply.stop_reason, reply.model) == ("The answer.", "end_turn", "gemini-2.5-flash")
    # Thinking is billed as output but is not in candidatesTokenCount.
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (40, 31) and reply.tool_calls == []
    assert server.received[0].path == "/v1beta/models/gemini-2.5-flash:generateContent"  # models/ said once
    assert "generationConfig" not in server.received[0].body  # nothing set, nothing sent


def test_max_tokens_is_a_clear_error(server):
    server.queue(Reply(body=gemini_generate(text="half an ans", finish_reason="MAX_TOKENS")))
    with pytest.raises(ProviderError, match="gemini: reply cut off at the token limit .*maxOutputTokens=50") as caught:
        provider(server, max_tokens=50).complete(request())
    assert caught.value.error_type == "max_tokens"


def test_safety_stop_and_a_blocked_prompt_are_refusals(server):
    server.queue(Reply(body=gemini_generate(finish_reason="SAFETY")),
                 Reply(body={"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}))
    with pytest.raises(ProviderError, match=r"finishReason SAFETY") as first:
        provider(server).complete(request())
    with pytest.raises(ProviderError, match=r"prompt was blocked \(PROHIBITED_CONTENT\)") as second:
        provider(server).complete(request())
    assert first.value.error_type == second.value.error_type == "refusal"


@pytest.mark.parametrize("finish", ["MALFORMED_FUNCTION_CALL", "OTHER", "FINISH_REASON_UNSPECIFIED"])
def test_other_stops_without_an_answer_are_named(server, finish):
    data = gemini_generate(finish_reason=finish)
    data["candidates"][0]["finishMessage"] = "Malformed function call: print(weather(city=Paris)"
    server.queue(Reply(body=data))
    with pytest.raises(ProviderError, match=f"finishReason {finish}") as caught:
        provider(server).complete(request())
    assert caught.value.error_type == "stop_reason" and not isinstance(caught.value, TransientProviderError)
    assert "Malformed function call" in str(caught.value)


def test_429_waits_as_long_as_the_body_says(server):
    """Gemini puts the wait in a google.rpc.RetryInfo detail, not in a retry-after header."""
    server.queue(Reply(status=429, body=gemini_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="37s")),
                 Reply(status=503, body=gemini_error(503, "UNAVAILABLE", "overloaded", retry_delay="1.5s"),
                       headers={"retry-after": "4"}))
    with pytest.raises(TransientProviderError) as first:
        provider(server).complete(request())
    assert (first.value.retry_after, first.value.error_type) == (37.0, "RESOURCE_EXHAUSTED")
    with pytest.raises(TransientProviderError) as second:
        provider(server).complete(request())
    assert second.value.retry_after == 4.0  # a header, when one is sent, wins


def test_429_is_transient_and_400_is_not(server):
    server.queue(Reply(status=429, body=gemini_error(429, "RESOURCE_EXHAUSTED", "quota"), headers={"retry-after": "7"}),
                 Reply(status=400, body=gemini_error(400, "INVALID_ARGUMENT", "bad schema")))
    with pytest.raises(TransientProviderError) as busy:
        provider(server).complete(request())
    assert (busy.value.status, busy.value.error_type, busy.value.retry_after) == (429, "RESOURCE_EXHAUSTED", 7.0)
    with pytest.raises(ProviderError, match="HTTP 400 .*bad schema") as bad:
        provider(server).complete(request())
    assert not isinstance(bad.value, TransientProviderError) and bad.value.error_type == "INVALID_ARGUMENT"


def test_malformed_replies_name_the_provider(server):
    server.queue(Reply(body="{not json"), Reply(body={"candidates": []}),
                 Reply(body=gemini_generate(calls=[("weather", "not an object")])))
    with pytest.raises(ProviderError, match="gemini: malformed reply .*invalid JSON") as caught:
        provider(server).complete(request())
    assert caught.value.error_type == "malformed_reply" and caught.value.status == 200
    with pytest.raises(ProviderError, match="gemini: malformed reply: no candidates"):
        provider(server).complete(request())
    reply = provider(server).complete(request())  # not run; the model is told
    assert "tool call 'weather' not run: its arguments are not valid JSON" in reply.tool_calls[0].problem


def test_the_key_never_appears_in_an_error(server):
    server.queue(Reply(status=403, body=gemini_error(403, "PERMISSION_DENIED", f"key {KEY} is not valid")))
    with pytest.raises(ProviderError) as caught:
        provider(server).complete(request())
    assert KEY not in str(caught.value) and caught.value.status == 403


def test_an_html_error_page_from_a_proxy_is_transient_and_described(server):
    server.queue(Reply(status=502, body="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                       content_type="text/html"))
    with pytest.raises(TransientProviderError, match="HTTP 502 .*an HTML page, not JSON.*502 Bad Gateway"):
        provider(server).complete(request())


def test_json_schema_becomes_gemini_schema():
    """What pydantic and MCP servers emit, reduced to the fields Gemini's Schema has."""
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "$defs": {"Point": {"type": "object", "title": "Point", "properties": {"x": {"type": "integer"}},
                            "required": ["x", "ghost"]}},
        "properties": {
            "at": {"$ref": "#/$defs/Point", "description": "where"},
            "path": {"type": "array", "items": {"$ref": "#/$defs/Point"}, "default": []},
            "limit": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "default": None, "title": "L"},
            "mode": {"type": ["string", "null"], "enum": ["fast", "slow", "", None]},
            "level": {"type": "integer", "enum": [1, 2], "description": "how deep"},
            "kind": {"const": "point"},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}], "allOf": [{"minimum": 0}]},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "propertyNames": {}},
        },
        "required": ["at", "missing"],
    }
    point = {"type": "object", "title": "Point", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    assert wire_function(ToolSchema(name="t", description="d", parameters=schema))["parameters"] == {
        "type": "object",
        "properties": {
            "at": {**point, "description": "where"},
            "path": {"type": "array", "items": point, "default": []},
            "limit": {"type": "integer", "minimum": 1, "nullable": True, "default": None, "title": "L"},
            "mode": {"type": "string", "nullable": True, "enum": ["fast", "slow"]},
            "level": {"type": "integer", "description": "how deep (one of: 1, 2)"},
            "kind": {"enum": ["point"]},
            "either": {"anyOf": [{"type": "string"}, {"type": "number"}]},
            "headers": {"type": "object"},
        },
        "required": ["at"],
    }


def test_a_recursive_ref_stops_instead_of_looping():
    schema = {"type": "object", "properties": {"tree": {"$ref": "#/$defs/Node"}},
              "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}}}
    node = gemini_schema(schema)["properties"]["tree"]
    depth = 0
    while node.get("properties"):
        node, depth = node["properties"]["child"], depth + 1
    assert depth == MAX_REF_DEPTH and node == {}
