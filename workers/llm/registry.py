"""Provider names → factories. A factory takes the resolved `LLMConfig` and the agent's spec."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Callable

from crewq.config.errors import ConfigError

if TYPE_CHECKING:  # checking a crew file needs only the names
    from crewq.config.schema import Agent

    from .base import Provider
    from .types import LLMConfig

Factory = Callable[["LLMConfig", "Agent"], "Provider"]


def _http(module: str, name: str) -> Factory:
    """A provider imported when first built: the HTTP providers pull in httpx, which checking a crew
    file (`crewq validate`) never needs."""
    def factory(config: LLMConfig, agent: Agent) -> Provider:
        return getattr(import_module(module, __package__), name)(config)
    return factory


def _scripted(config: LLMConfig, agent: Agent) -> Provider:
    from .scripted import ScriptedProvider
    return ScriptedProvider(config, agent.script)


_FACTORIES: dict[str, Factory] = {
    "scripted": _scripted,
    "anthropic": _http(".anthropic", "AnthropicProvider"),
    "openai": _http(".openai", "OpenAIProvider"),
    "openai-compatible": _http(".openai", "OpenAIProvider"),  # vLLM, LM Studio, llama.cpp, ...
    "ollama": _http(".ollama", "OllamaProvider"),
    "gemini": _http(".gemini", "GeminiProvider"),
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
