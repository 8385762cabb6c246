"""Provider names → factories. A factory takes the resolved `LLMConfig` and the agent's spec."""

from __future__ import annotations

from typing import Callable

from crewq.config.errors import ConfigError
from crewq.config.schema import Agent

from .anthropic import AnthropicProvider
from .base import Provider
from .gemini import GeminiProvider
from .ollama import OllamaProvider
from .openai import OpenAIProvider
from .scripted import ScriptedProvider
from .types import LLMConfig

Factory = Callable[[LLMConfig, Agent], Provider]

_FACTORIES: dict[str, Factory] = {
    "scripted": lambda config, agent: ScriptedProvider(config, agent.script),
    "anthropic": lambda config, agent: AnthropicProvider(config),
    "openai": lambda config, agent: OpenAIProvider(config),
    "openai-compatible": lambda config, agent: OpenAIProvider(config),  # vLLM, LM Studio, llama.cpp, ...
    "ollama": lambda config, agent: OllamaProvider(config),
    "gemini": lambda config, agent: GeminiProvider(config),
}


def register_provider(name: str, factory: Factory) -> None:
    _FACTORIES[name] = factory


def provider_names() -> list[str]:
    return sorted(_FACTORIES)


def create_provider(config: LLMConfig, agent: Agent) -> Provider:
    try:
        factory = _FACTORIES[config.provider]
    except KeyError:
        raise ConfigError(f"unknown LLM provider {config.provider!r}; known: {', '.join(provider_names())}",
                          key=f"agents.{agent.id}.llm.provider") from None
    return factory(config, agent)
