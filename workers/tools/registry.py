"""Tool names → factories, and the toolbox of one agent.

A factory takes the tool's `ToolSpec` from the crew file and returns the tools it provides (one
for a built-in; several for a server that publishes many). An agent's `tools:` entry names a
built-in, or a `tools[]` entry by its `name` (or, for servers, its `extra.server_name`).
"""

from __future__ import annotations

from typing import Callable

from config.errors import ConfigError
from config.loader import suggest
from config.schema import Agent, Crew, ToolSpec

from .base import Tool
from .files import ListFiles, ReadFile, WriteFile
from .python_tool import PythonTool

ToolFactory = Callable[[ToolSpec], list[Tool]]

_FACTORIES: dict[str, ToolFactory] = {
    "read_file": lambda spec: [ReadFile(spec)],
    "write_file": lambda spec: [WriteFile(spec)],
    "list_files": lambda spec: [ListFiles(spec)],
}


def register_tool(name: str, factory: ToolFactory) -> None:
    _FACTORIES[name] = factory


def builtin_names() -> list[str]:
    return sorted(_FACTORIES)


def spec_for(crew: Crew, name: str) -> ToolSpec | None:
    for spec in crew.tools:
        if spec.name == name or spec.extra.get("server_name") == name:
            return spec
    return None


def unknown_tools(crew: Crew) -> list[tuple[int, int, str, str | None]]:
    """(agent index, tool index, name, hint) for every tool an agent names that nothing provides."""
    known = set(_FACTORIES) | {s.name for s in crew.tools} | {
        s.extra["server_name"] for s in crew.tools if s.extra.get("server_name")}
    found = []
    for i, agent in enumerate(crew.agents):
        for j, name in enumerate(agent.tools):
            if name not in known:
                found.append((i, j, name, suggest(name, known)))
    for spec in crew.tools:
        if not spec.python and spec.name not in _FACTORIES:
            found.append((-1, crew.tools.index(spec), spec.name, suggest(spec.name, _FACTORIES)))
    return found


def build_tools(spec: ToolSpec) -> list[Tool]:
    if spec.python:
        return [PythonTool(spec)]
    try:
        factory = _FACTORIES[spec.name]
    except KeyError:
        raise ConfigError(f"unknown tool {spec.name!r}", key=f"tools.{spec.name}",
                          hint=suggest(spec.name, _FACTORIES)) from None
    return factory(spec)


def toolbox(crew: Crew, agent: Agent) -> dict[str, Tool]:
    """The tools one agent may call, by the name the model sees."""
    tools: dict[str, Tool] = {}
    for name in agent.tools:
        spec = spec_for(crew, name) or ToolSpec(name=name)
        for tool in build_tools(spec):
            tools.setdefault(tool.name, tool)
    return tools
