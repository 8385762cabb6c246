"""An agent's LLM chain: its primary (`llm:` over the runtime's defaults), then its `fallback:` list.

Called in the worker that makes the call, because it resolves `env:` references: secrets live
only in that process's memory. A fallback entry stands alone (provider, model, key and base URL are
its own, since a fallback is usually another provider), except `temperature` and `max_tokens`,
which it inherits from the primary when it leaves them out: they belong to the agent's task.
Errors name the key the value came from: `agents.<id>.llm.api_key`, `runtime.api_key`,
`agents.<id>.llm.fallback[1].api_key`.
"""

from __future__ import annotations

from typing import Callable, Mapping

from crewq.config.envref import ref_name, resolve
from crewq.config.errors import ConfigError
from crewq.config.policy import policy_of
from crewq.config.schema import Agent, Crew, LLMFallback, LLMOverride

from .registry import provider_names
from .types import LLMConfig

# Every HTTP provider asks for a model by name (`crewq validate` checks it too, before anything runs).
MODEL_REQUIRED = frozenset({"anthropic", "openai", "openai-compatible", "ollama", "gemini"})
_RUNTIME_KEYS = {"provider": "llm_provider", "model": "model", "api_key": "api_key", "base_url": "base_url"}


def llm_chain(crew: Crew, agent: Agent, env: Mapping[str, str] | None = None) -> list[LLMConfig]:
    """[primary, *fallbacks] with every `env:` reference resolved from `env` (default: os.environ)."""
    own = agent.llm or LLMOverride()
    where = f"agents.{agent.id}.llm"
    primary = crew.llm_of(agent)

    def origin(field: str) -> str:  # the key a primary's value came from, for error messages
        runtime_key = _RUNTIME_KEYS[field]
        if getattr(own, field) is None and getattr(crew.runtime, runtime_key) is not None:
            return f"runtime.{runtime_key}"
        return f"{where}.{field}"

    chain = [_config(primary, origin, env)]
    for i, entry in enumerate(own.fallback):
        def origin_i(field: str, i: int = i) -> str:  # a def, not a lambda: mypy cannot type a lambda's defaults
            return f"{where}.fallback[{i}].{field}"
        chain.append(_config(_inherit(entry, primary), origin_i, env))
    return chain


def _config(spec: LLMOverride | LLMFallback, origin: Callable[[str], str],
            env: Mapping[str, str] | None) -> LLMConfig:
    values = {field: resolve(getattr(spec, field), env, key=origin(field))
              for field in ("provider", "model", "api_key", "base_url")}
    provider = values["provider"]
    if not provider:
        raise ConfigError("no LLM provider: set runtime.llm_provider or the agent's llm.provider",
                          key=origin("provider"))
    if provider not in provider_names():
        raise ConfigError(f"unknown LLM provider {provider!r}; known: {', '.join(provider_names())}",
                          key=origin("provider"))
    if provider in MODEL_REQUIRED and not values["model"]:
        raise ConfigError(f"the {provider} provider needs a model", key=origin("model"))
    return LLMConfig(**values, temperature=spec.temperature, max_tokens=spec.max_tokens, policy=policy_of(env),
                     key_var=ref_name(spec.api_key) if values["api_key"] else None)


def _inherit(entry: LLMFallback, primary: LLMOverride) -> LLMFallback:
    return entry.model_copy(update={
        "temperature": entry.temperature if entry.temperature is not None else primary.temperature,
        "max_tokens": entry.max_tokens if entry.max_tokens is not None else primary.max_tokens,
    })
