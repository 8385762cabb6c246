"""LLM providers behind one interface (`Provider.complete`)."""

from .base import Provider
from .registry import create_provider, provider_names, register_provider
from .types import LLMConfig, LLMReply, LLMRequest, Message, ToolCall, ToolSchema, Usage

__all__ = ["LLMConfig", "LLMReply", "LLMRequest", "Message", "Provider", "ToolCall", "ToolSchema", "Usage",
           "create_provider", "provider_names", "register_provider"]
