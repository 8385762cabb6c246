"""One base_url rule for every provider: a root, a leading part of the endpoint, or the whole endpoint."""

from __future__ import annotations

import pytest

from crewq.config.errors import ProviderError
from crewq.workers.llm.anthropic import AnthropicProvider
from crewq.workers.llm.gemini import GeminiProvider
from crewq.workers.llm.ollama import OllamaProvider
from crewq.workers.llm.openai import OpenAIProvider
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message

from fakes.llm_servers import FakeLLMServer, Reply, anthropic_message, gemini_generate, ollama_chat, openai_completion

CASES = [  # provider class, provider name, model, endpoint path, reply
    (AnthropicProvider, "anthropic", "claude-sonnet-4-6", "/v1/messages", anthropic_message(text="ok")),
    (OpenAIProvider, "openai", "gpt-4o", "/v1/chat/completions", openai_completion(text="ok")),
    (OpenAIProvider, "openai-compatible", "local", "/v1/chat/completions", openai_completion(text="ok")),
    (OllamaProvider, "ollama", "llama3.1", "/api/chat", ollama_chat(text="ok")),
    (GeminiProvider, "gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent",
     gemini_generate(text="ok")),
]


@pytest.mark.parametrize("cls,name,model,path,body", CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("form", ["root", "first segment", "full endpoint"])
def test_a_root_or_a_full_endpoint_reach_the_same_path(cls, name, model, path, body, form):
    with FakeLLMServer() as server:
        base = {"root": server.url, "first segment": server.url + "/" + path.split("/")[1],
                "full endpoint": server.url + path}[form]
        server.queue(Reply(body=body))
        reply = cls(LLMConfig(provider=name, model=model, api_key="k", base_url=base)).complete(
            LLMRequest(system="s", messages=[Message(role="user", content="go")]))
        assert reply.text == "ok"
        assert server.received[0].path == path  # never /v1/messages/v1/messages


def test_openai_compatible_needs_a_base_url_and_openai_a_model():
    go = LLMRequest(system="s", messages=[Message(role="user", content="go")])
    with pytest.raises(ProviderError, match="openai-compatible needs base_url"):
        OpenAIProvider(LLMConfig(provider="openai-compatible", model="m")).complete(go)
    with pytest.raises(ProviderError, match="no model configured for openai"):
        OpenAIProvider(LLMConfig(provider="openai", api_key="k")).complete(go)


def test_validate_names_an_openai_compatible_agent_without_base_url(tmp_path):
    from crewq.config.errors import ConfigError
    from crewq.scheduler.validate import check

    from helpers import write_crew
    path = write_crew(tmp_path, "runtime: {llm_provider: openai-compatible, model: m}\nagents: [{id: a}]\n")
    with pytest.raises(ConfigError, match="runtime.llm_provider: agent 'a': openai-compatible needs base_url"):
        check(path)
