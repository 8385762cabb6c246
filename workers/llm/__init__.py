"""LLM providers behind one interface (`Provider.complete`).

The names below are imported on first use (PEP 562): `crewq validate` reads only the provider
names from `.registry`, and the request/reply models cost ~20 ms it does not need."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["LLMConfig", "LLMReply", "LLMRequest", "Message", "Provider", "ToolCall", "ToolSchema", "Usage",
           "create_provider", "provider_names", "register_provider"]

_LAZY = {"Provider": ".base", "create_provider": ".registry", "provider_names": ".registry",
         "register_provider": ".registry", "LLMConfig": ".types", "LLMReply": ".types", "LLMRequest": ".types",
         "Message": ".types", "ToolCall": ".types", "ToolSchema": ".types", "Usage": ".types"}

if TYPE_CHECKING:
    from .base import Provider
    from .registry import create_provider, provider_names, register_provider
    from .types import LLMConfig, LLMReply, LLMRequest, Message, ToolCall, ToolSchema, Usage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
