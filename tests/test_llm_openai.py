"""The OpenAI provider (and OpenAI-compatible servers) against a local chat-completions server."""

from __future__ import annotations

import json

import pytest

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.workers.llm.openai import OpenAIProvider
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message, ToolSchema

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion, openai_error

KEY = "sk-proj-test-abcdef123456"


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def provider(server: FakeLLMServer, name: str = "openai", key: str | None = KEY, **kw) -> OpenAIProvider:
    return OpenAIProvider(LLMConfig(provider=name, model="gpt-4o", api_key=key, base_url=server.url, **kw))


def request(messages: list[Message] | None = None, **kw) -> LLMRequest:
    tools = [ToolSchema(name="search", description="Search", parameters={"type": "object", "properties": {}})]
    return LLMRequest(system="Be brief.", messages=messages or [Message(role="user", content="go")],
                      tools=tools, call_index=3, **kw)


def test_several_tool_calls_and_their_results_round_trip(server):
    server.queue(Reply(body=openai_completion(tool_calls=[("call_a", "search", '{"q": "one"}'),
                                                          ("call_b", "search", '{"q": "two"}')])))
    reply = provider(server).complete(request())
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_a", "search", {"q": "one"}), ("call_b", "search", {"q": "two"})]
    assert reply.stop_reason == "tool_use" and reply.text == ""
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 7)
    sent = server.received[0]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.body["tools"] == [{"type": "function", "function": {
        "name": "search", "description": "Search", "parameters": {"type": "object", "properties": {}}}}]

    history = [Message(role="user", content="go"), reply.as_message(),
               Message(role="tool", tool_call_id="call_a", name="search", content="r1"),
               Message(role="tool", tool_call_id="call_b", name="search", content="boom", is_error=True)]
    server.queue(Reply(body=openai_completion(text="Done.")))
    assert provider(server).complete(request(history)).text == "Done."
    messages = server.received[1].body["messages"]
    assistant = messages[2]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert [(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in assistant["tool_calls"]] == [("call_a", "function", "search", {"q": "one"}),
                                                  ("call_b", "function", "search", {"q": "two"})]
    assert messages[3:] == [{"role": "tool", "tool_call_id": "call_a", "content": "r1"},
                            {"role": "tool", "tool_call_id": "call_b", "content": "ERROR: boom"}]


def test_compatible_servers_are_read_defensively(server):
    """Object arguments, missing and duplicate ids, no usage, and tool_calls despite finish_reason stop."""
    server.queue(Reply(body=openai_completion(
        tool_calls=[(None, "search", {"q": "obj"}), ("dup", "search", ""), ("dup", "search", None)],
        finish_reason="stop", usage=None)))
    reply = provider(server, name="openai-compatible", key=None).complete(request())
    assert [c.id for c in reply.tool_calls] == ["call_3_0", "dup", "dup_2"]
    assert [c.arguments for c in reply.tool_calls] == [{"q": "obj"}, {}, {}]
    assert reply.stop_reason == "tool_use" and reply.usage.input_tokens == 0 and reply.usage.output_tokens == 0
    assert reply.provider == "openai-compatible"
    assert "authorization" not in server.received[0].headers  # local servers need no key


def test_content_as_a_list_of_parts(server):
    body = openai_completion(text=None)
    body["choices"][0]["message"]["content"] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    server.queue(Reply(body=body))
    assert provider(server).complete(request()).text == "ab"


def test_arguments_that_are_not_json_or_not_an_object_become_the_calls_problem(server):
    server.queue(Reply(body=openai_completion(tool_calls=[("c1", "search", '{"q": "unterminated'),
                                                          ("c2", "search", "[1, 2]"), ("c3", "search", '{"q": 1}')])))
    calls = provider(server).complete(request()).tool_calls
    assert calls[0].problem == ("tool call 'search' not run: its arguments are not valid JSON: "
                                "'{\"q\": \"unterminated'; send a JSON object")
    assert calls[1].problem == "tool call 'search' not run: its arguments are a JSON list, expected an object"
    assert calls[2].problem is None and calls[2].arguments == {"q": 1}


def test_429_with_retry_after_ms_then_success(server):
    server.queue(Reply(status=429, body=openai_error("requests", "rate_limit_exceeded"),
                       headers={"retry-after-ms": "1500", "retry-after": "9", "x-request-id": "req_oa"}),
                 Reply(body=openai_completion(text="ok")))
    with pytest.raises(TransientProviderError) as caught:
        provider(server).complete(request())
    assert caught.value.retry_after == 1.5 and caught.value.request_id == "req_oa"
    assert caught.value.error_type == "rate_limit_exceeded"
    assert provider(server).complete(request()).text == "ok"


def test_insufficient_quota_is_never_retried(server):
    server.queue(Reply(status=429, body=openai_error("insufficient_quota", "insufficient_quota")))
    with pytest.raises(ProviderError) as caught:
        provider(server).complete(request())
    assert not isinstance(caught.value, TransientProviderError)
    assert caught.value.error_type == "insufficient_quota" and caught.value.status == 429


def test_invalid_key_is_not_retried_and_not_echoed(server):
    server.queue(Reply(status=401, body=openai_error("invalid_request_error", "invalid_api_key",
                                                     f"Incorrect API key provided: {KEY}")))
    with pytest.raises(ProviderError) as caught:
        provider(server).complete(request())
    assert not isinstance(caught.value, TransientProviderError) and KEY not in str(caught.value)


def test_length_without_tool_calls_is_a_clear_error(server):
    server.queue(Reply(body=openai_completion(text="cut", finish_reason="length")))
    with pytest.raises(ProviderError, match="token limit") as caught:
        provider(server, max_tokens=32).complete(request())
    assert caught.value.error_type == "max_tokens"
    assert server.received[0].body["max_tokens"] == 32


def test_refusal(server):
    body = openai_completion(text=None)
    body["choices"][0]["message"]["refusal"] = "I can't do that."
    server.queue(Reply(body=body))
    with pytest.raises(ProviderError, match="refused") as caught:
        provider(server).complete(request())
    assert caught.value.error_type == "refusal"


@pytest.mark.parametrize("body,match", [
    ({"object": "chat.completion", "choices": []}, "no choices"),
    ({"error": {"message": "model overloaded"}}, "error in a 200 reply: model overloaded"),
    ({"choices": [{"message": {"content": "x", "tool_calls": [{"function": {}}]}}]}, "no function name"),
])
def test_malformed_replies_name_the_provider(server, body, match):
    server.queue(Reply(body=body))
    with pytest.raises(ProviderError, match=f"openai: .*{match}"):
        provider(server).complete(request())
