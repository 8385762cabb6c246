"""The policy's size limits on what a worker stores in Redis: LLM replies, tool call arguments and
tool results (`crewq.config.limits`). A run's records live for its retention; none may be unbounded."""

from __future__ import annotations

import json
from typing import Any

from crewq.config.limits import Limits

from .tools.base import truncate


def _size(data: Any) -> int:
    return len(json.dumps(data, ensure_ascii=False, default=str))


def check_reply(data: dict, limits: Limits, agent_id: str) -> None:
    """ConfigError (the agent fails, naming the limit) for a reply too big to store."""
    limits.check_size("max_reply_chars", _size(data), f"agent {agent_id!r}'s LLM reply")


def arguments_problem(arguments: Any, limits: Limits) -> str | None:
    """Why a tool call's arguments are not run (too big), or None."""
    size = _size(arguments)
    if size > limits.max_tool_argument_chars:
        return (f"arguments are {size:,} characters of JSON, over the limit of {limits.max_tool_argument_chars:,} "
                "(policy limits.max_tool_argument_chars); send less")
    return None


def bound_result(result: dict, limits: Limits) -> dict:
    """A tool result that fits the limit: its structured copy dropped, then its text cut."""
    limit = limits.max_tool_result_chars
    if _size(result) <= limit:
        return result
    note = f"…[result over limits.max_tool_result_chars ({limit:,}); cut]"
    content = truncate(str(result.get("content", "")), max(limit // 2 - len(note), 0)) + "\n" + note
    return {**result, "content": content, "structured": None}
