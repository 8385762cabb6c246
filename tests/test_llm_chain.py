"""llm_chain: an agent's primary and fallbacks from the crew file, env: references resolved."""

from __future__ import annotations

import pytest

from crewq.config.errors import ConfigError, MissingEnvError
from crewq.config.loader import load_crew_text
from crewq.workers.llm.chain import llm_chain

CREW = """
runtime:
  llm_provider: anthropic
  model: claude-sonnet-4-5
  api_key: env:ANTHROPIC_API_KEY
agents:
  - id: writer
    llm:
      temperature: 0.3
      max_tokens: 800
      fallback:
        - provider: openai
          model: gpt-4o-mini
          api_key: env:OPENAI_API_KEY
        - provider: ollama
          model: llama3.1
          base_url: env:OLLAMA_URL:-http://127.0.0.1:11434
          temperature: 0.9
  - id: critic
    llm:
      provider: openai-compatible
      base_url: http://127.0.0.1:8000/v1
"""
ENV = {"ANTHROPIC_API_KEY": "a-key", "OPENAI_API_KEY": "o-key"}


def test_primary_then_fallbacks_in_order():
    crew = load_crew_text(CREW).crew
    configs = llm_chain(crew, crew.agent("writer"), ENV)
    assert [(c.provider, c.model, c.api_key, c.base_url) for c in configs] == [
        ("anthropic", "claude-sonnet-4-5", "a-key", None),
        ("openai", "gpt-4o-mini", "o-key", None),
        ("ollama", "llama3.1", None, "http://127.0.0.1:11434")]
    # temperature and max_tokens follow the agent unless a fallback sets its own
    assert [(c.temperature, c.max_tokens) for c in configs] == [(0.3, 800), (0.3, 800), (0.9, 800)]
    assert "a-key" not in repr(configs[0])


def test_an_agent_without_fallbacks_and_an_openai_compatible_server():
    crew = load_crew_text(CREW).crew
    [config] = llm_chain(crew, crew.agent("critic"), ENV)
    assert (config.provider, config.model, config.base_url) == ("openai-compatible", "claude-sonnet-4-5",
                                                                "http://127.0.0.1:8000/v1")


def test_a_missing_key_is_named_where_it_is_written():
    crew = load_crew_text(CREW).crew
    with pytest.raises(MissingEnvError) as caught:
        llm_chain(crew, crew.agent("writer"), {"ANTHROPIC_API_KEY": "a"})
    assert caught.value.key == "agents.writer.llm.fallback[0].api_key" and caught.value.var == "OPENAI_API_KEY"
    with pytest.raises(MissingEnvError) as caught:
        llm_chain(crew, crew.agent("writer"), {})
    assert caught.value.key == "runtime.api_key"


def test_unknown_provider_and_missing_model():
    crew = load_crew_text(CREW.replace("provider: ollama", "provider: olama")).crew
    with pytest.raises(ConfigError, match="unknown LLM provider 'olama'") as caught:
        llm_chain(crew, crew.agent("writer"), ENV)
    assert caught.value.key == "agents.writer.llm.fallback[1].provider"
    crew = load_crew_text(CREW.replace("          model: gpt-4o-mini\n", "")).crew
    with pytest.raises(ConfigError, match="needs a model") as caught:
        llm_chain(crew, crew.agent("writer"), ENV)
    assert caught.value.key == "agents.writer.llm.fallback[0].model"


def test_a_fallback_needs_a_provider():
    with pytest.raises(ConfigError, match="provider"):
        load_crew_text(CREW.replace("        - provider: openai\n          model: gpt-4o-mini",
                                    "        - model: gpt-4o-mini"))
