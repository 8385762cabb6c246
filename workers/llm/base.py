"""The provider interface: one required method.

A provider is built from an `LLMConfig` whose secrets are already resolved, in the worker that
makes the call. It raises `TransientProviderError` for what may pass (the turn retries it with a
Celery countdown) and `ProviderError` for the rest. It never enforces retries itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from .types import LLMConfig, LLMReply, LLMRequest


class Provider(ABC):
    name: str = "provider"

    def __init__(self, config: LLMConfig):
        self.config = config

    @abstractmethod
    def complete(self, request: LLMRequest) -> LLMReply:
        """Make one LLM call."""
