"""One LLM call for one agent turn: the provider chain (primary, then fallbacks).

The turn task calls `call_llm` and nothing else. A `TransientProviderError` that escapes means
"retry this turn later" (the turn schedules a Celery retry with `retry.countdown`); any other
`ProviderError` fails the turn.
"""

from __future__ import annotations

from config.schema import Agent

from .registry import create_provider
from .types import LLMConfig, LLMReply, LLMRequest


def call_llm(configs: list[LLMConfig], agent: Agent, request: LLMRequest, *, redis=None, prefix: str = "crewq") -> LLMReply:
    """Ask the first provider of `configs` (the agent's primary; fallbacks follow)."""
    return create_provider(configs[0], agent).complete(request)
