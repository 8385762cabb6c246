"""Limits on the tool calls one agent attempt makes: a total, and identical repeats.

A call over a limit is not run: the model gets an error result saying why, and goes on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from crewq.config.schema import Agent

from .llm.types import ToolCall


def call_signature(call: ToolCall) -> str:
    return call.name + ":" + json.dumps(call.arguments, sort_keys=True, default=str)


@dataclass
class ToolCallBudget:
    """What an attempt has used so far; `check` counts a call it lets through."""
    agent: Agent
    tool_names: set[str]
    total: int = 0
    seen: Counter | None = None

    def __post_init__(self):
        self.seen = self.seen or Counter()

    def count(self, call: ToolCall) -> None:
        self.total += 1
        assert self.seen is not None  # set in __post_init__
        self.seen[call_signature(call)] += 1

    def check(self, call: ToolCall) -> str | None:
        """None if the call may run (and count it), else the reason it is skipped."""
        if call.problem:
            return call.problem
        if call.name not in self.tool_names:
            names = ", ".join(sorted(self.tool_names)) or "none"
            return f"unknown tool {call.name!r}; the tools you have: {names}"
        if self.total >= self.agent.max_total_tool_calls:
            return (f"skipped: the limit of {self.agent.max_total_tool_calls} tool calls for this agent "
                    "is reached; answer with what you have")
        assert self.seen is not None  # set in __post_init__
        if self.seen[call_signature(call)] >= self.agent.max_duplicate_tool_calls:
            return (f"skipped: this exact call was already made {self.seen[call_signature(call)]} times; "
                    "use its earlier result")
        self.count(call)
        return None
