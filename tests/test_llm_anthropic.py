"""The Anthropic provider against a local server that answers in the Messages API's shapes."""

from __future__ import annotations

import pytest

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.workers.llm.anthropic import AnthropicProvider
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message, ToolCall, ToolSchema

from fakes.llm_servers import FakeLLMServer, Reply, anthropic_error, anthropic_message

KEY = "sk-ant-test-0123456789"


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def provider(server: FakeLLMServer, **kw) -> AnthropicProvider:
    return AnthropicProvider(LLMConfig(provider="anthropic", model="claude-sonnet-4-5", api_key=KEY,
                                       base_url=server.url, **kw))


def request(messages: list[Message] | None = None, **kw) -> LLMRequest:
    tools = [ToolSchema(name="search", description="Search the web",
                        parameters={"type": "object", "properties": {"q": {"type": "string"}}}),
             ToolSchema(name="read", description="Read a file", parameters={"type": "object", "properties": {}})]
    return LLMRequest(system="You are a researcher.", messages=messages or [Message(role="user", content="go")],
                      tools=tools, **kw)


def test_several_tool_calls_and_their_results_round_trip(server):
    server.queue(Reply(body=anthropic_message(text="Looking.", tool_uses=[
        ("toolu_1", "search", {"q": "crewq"}), ("toolu_2", "read", {"path": "a.txt"})])))
    reply = provider(server).complete(request())
    assert reply.stop_reason == "tool_use" and reply.text == "Looking."
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("toolu_1", "search", {"q": "crewq"}), ("toolu_2", "read", {"path": "a.txt"})]
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 5)
    assert reply.provider == "anthropic" and reply.model == "claude-sonnet-4-5-20250929"

    sent = server.received[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == "You are a researcher." and sent.body["max_tokens"] == 4096
    assert sent.body["tools"][0] == {"name": "search", "description": "Search the web",
                                     "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}

    # The next turn: results arrive in the history out of order, one of them failed.
    history = [Message(role="user", content="go"), reply.as_message(),
               Message(role="tool", tool_call_id="toolu_2", name="read", content="no such file", is_error=True),
               Message(role="tool", tool_call_id="toolu_1", name="search", content="3 results")]
    server.queue(Reply(body=anthropic_message(text="Done.")))
    final = provider(server).complete(request(history))
    assert final.text == "Done." and final.tool_calls == [] and final.stop_reason == "end_turn"

    messages = server.received[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "crewq"}},
        {"type": "tool_use", "id": "toolu_2", "name": "read", "input": {"path": "a.txt"}}]
    assert messages[2]["content"] == [  # together, in the order the model asked, is_error on the failed one
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 results"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such file", "is_error": True}]


def test_429_with_retry_after_then_success(server):
    server.queue(Reply(status=429, body=anthropic_error("rate_limit_error"),
                       headers={"retry-after": "2", "request-id": "req_429"}),
                 Reply(body=anthropic_message(text="ok")))
    with pytest.raises(TransientProviderError) as caught:
        provider(server).complete(request())
    error = caught.value
    assert error.retry_after == 2 and error.status == 429
    assert error.error_type == "rate_limit_error" and error.request_id == "req_429"
    assert error.provider == "anthropic"
    assert provider(server).complete(request()).text == "ok"


def test_529_overloaded_is_transient_without_retry_after(server):
    server.queue(Reply(status=529, body=anthropic_error("overloaded_error", "Overloaded")))
    with pytest.raises(TransientProviderError) as caught:
        provider(server).complete(request())
    assert caught.value.retry_after is None and caught.value.error_type == "overloaded_error"
    assert caught.value.request_id == "req_fake_body"  # from the body when no header carries it


@pytest.mark.parametrize("status,error_type", [(401, "authentication_error"), (403, "permission_error"),
                                               (429, "enforced_spend_limit_reached")])
def test_auth_and_spend_limit_are_never_retried(server, status, error_type):
    body = anthropic_error("rate_limit_error" if status == 429 else error_type)
    if status == 429:
        body["error"]["details"] = {"error_code": error_type}
    server.queue(Reply(status=status, body=body, headers={"x-should-retry": "true", "retry-after": "1"}))
    with pytest.raises(ProviderError) as caught:
        provider(server).complete(request())
    assert not isinstance(caught.value, TransientProviderError)
    assert caught.value.status == status and caught.value.error_type == error_type


def test_x_should_retry_false_wins_over_a_5xx(server):
    server.queue(Reply(status=500, body=anthropic_error("api_error"), headers={"x-should-retry": "false"}))
    with pytest.raises(ProviderError) as caught:
        provider(server).complete(request())
    assert not isinstance(caught.value, TransientProviderError)


def test_x_should_retry_true_makes_a_400_transient(server):
    server.queue(Reply(status=400, body=anthropic_error("invalid_request_error"),
                       headers={"x-should-retry": "true", "retry-after-ms": "250"}))
    with pytest.raises(TransientProviderError) as caught:
        provider(server).complete(request())
    assert caught.value.status == 400 and caught.value.retry_after == 0.25


def test_the_api_key_never_appears_in_an_error(server):
    server.queue(Reply(status=400, body=anthropic_error("invalid_request_error", f"bad header x-api-key: {KEY}")))
    with pytest.raises(ProviderError) as caught:
        provider(server).complete(request())
    assert KEY not in str(caught.value) and "***" in str(caught.value)


def test_max_tokens_is_a_clear_error(server):
    server.queue(Reply(body=anthropic_message(text="The answer is", stop_reason="max_tokens")))
    with pytest.raises(ProviderError, match="token limit.*max_tokens=64") as caught:
        provider(server, max_tokens=64).complete(request())
    assert caught.value.error_type == "max_tokens" and not isinstance(caught.value, TransientProviderError)
    assert server.received[0].body["max_tokens"] == 64


def test_refusal_is_not_an_answer(server):
    server.queue(Reply(body=anthropic_message(text="I can't help with that.", stop_reason="refusal")))
    with pytest.raises(ProviderError, match="refused") as caught:
        provider(server).complete(request())
    assert caught.value.error_type == "refusal"


def test_pause_turn_continues_with_the_paused_content(server):
    server.queue(Reply(body=anthropic_message(text="Searching... ", stop_reason="pause_turn", usage=(10, 5))),
                 Reply(body=anthropic_message(text="found it.", usage=(30, 4))))
    reply = provider(server).complete(request())
    assert reply.text == "Searching... found it." and reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (40, 9)
    second = server.received[1].body["messages"]
    assert second[-1] == {"role": "assistant", "content": [{"type": "text", "text": "Searching... "}]}


def test_tool_use_stop_without_a_tool_use_block_is_malformed(server):
    server.queue(Reply(body=anthropic_message(text="hm", stop_reason="tool_use")))
    with pytest.raises(ProviderError, match="anthropic: malformed reply"):
        provider(server).complete(request())


def test_history_with_text_after_tool_results_keeps_results_first():
    from crewq.workers.llm.anthropic import wire_messages
    history = [Message(role="user", content="go"),
               Message(role="assistant", tool_calls=[ToolCall(id="a", name="x"), ToolCall(id="b", name="y")]),
               Message(role="tool", tool_call_id="b", content="B"),
               Message(role="user", content="also this"),
               Message(role="tool", tool_call_id="a", content="A")]
    turns = wire_messages(history)
    assert [b.get("tool_use_id", b.get("text")) for b in turns[2]["content"]] == ["a", "b", "also this"]
