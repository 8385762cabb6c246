"""The native Ollama provider against a local /api/chat server."""

from __future__ import annotations

import pytest

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.workers.llm.ollama import OllamaProvider
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message, ToolSchema

from fakes.llm_servers import FakeLLMServer, Reply, ollama_chat


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def provider(server: FakeLLMServer, **kw) -> OllamaProvider:
    return OllamaProvider(LLMConfig(provider="ollama", model="llama3.1", base_url=server.url, **kw))


def request(messages: list[Message] | None = None) -> LLMRequest:
    tools = [ToolSchema(name="weather", description="Weather", parameters={"type": "object", "properties": {}})]
    return LLMRequest(system="sys", messages=messages or [Message(role="user", content="go")], tools=tools,
                      call_index=2)


def test_tool_calls_and_results_round_trip(server):
    server.queue(Reply(body=ollama_chat(tool_calls=[("weather", {"city": "Paris"}),
                                                    ("weather", '{"city": "Oslo"}')])))
    reply = provider(server, temperature=0.2, max_tokens=100).complete(request())
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("ollama_2_0", "weather", {"city": "Paris"}), ("ollama_2_1", "weather", {"city": "Oslo"})]
    assert reply.stop_reason == "tool_use" and (reply.usage.input_tokens, reply.usage.output_tokens) == (20, 9)
    sent = server.received[0]
    assert sent.path == "/api/chat" and sent.body["stream"] is False
    assert sent.body["options"] == {"temperature": 0.2, "num_predict": 100}
    assert sent.body["messages"][0] == {"role": "system", "content": "sys"}
    assert "authorization" not in sent.headers

    # Results come back in the history out of order; Ollama matches them by position.
    history = [Message(role="user", content="go"), reply.as_message(),
               Message(role="tool", tool_call_id="ollama_2_1", name="weather", content="cold", is_error=True),
               Message(role="tool", tool_call_id="ollama_2_0", name="weather", content="mild")]
    server.queue(Reply(body=ollama_chat(text="Paris is mild.")))
    assert provider(server).complete(request(history)).text == "Paris is mild."
    messages = server.received[1].body["messages"]
    assert messages[2] == {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
        {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]}
    assert messages[3:] == [{"role": "tool", "tool_name": "weather", "content": "mild"},
                            {"role": "tool", "tool_name": "weather", "content": "ERROR: cold"}]


def test_unknown_model_is_a_clear_error(server):
    server.queue(Reply(status=404, body={"error": "model \"llama9\" not found, try pulling it first"}))
    with pytest.raises(ProviderError, match='ollama: HTTP 404 .*model "llama9" not found') as caught:
        provider(server).complete(request())
    assert not isinstance(caught.value, TransientProviderError) and caught.value.status == 404


def test_done_reason_length_is_a_clear_error(server):
    server.queue(Reply(body=ollama_chat(text="cut", done_reason="length")))
    with pytest.raises(ProviderError, match="token limit") as caught:
        provider(server).complete(request())
    assert caught.value.error_type == "max_tokens"


def test_503_while_loading_is_transient(server):
    server.queue(Reply(status=503, body={"error": "server busy"}))
    with pytest.raises(TransientProviderError, match="server busy"):
        provider(server).complete(request())
