"""What `crewq tools list [FILE]` shows: the built-ins, and every tool a crew file would give its agents.

With a crew file, its MCP servers are discovered and custom Python tools are imported; a tool that
cannot be built (a dead MCP server) is a row with its problem, and the rest are still listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from crewq.config import envref
from crewq.config.errors import ConfigError, ToolServerUnavailable
from crewq.config.loader import load_crew
from crewq.config.schema import ToolSpec

from .mcp import McpTool
from .registry import build_tools, builtin_names, source_of

# Factories that need settings to build anything (a server to ask): no row without a crew file.
_NEEDS_CONFIG = {"mcp"}


@dataclass(frozen=True)
class ToolRow:
    name: str
    source: str  # builtin | package <dist> | python <module:function> | mcp <server_name>
    description: str
    problem: str | None = None  # why it cannot be used now (a dead MCP server)


def list_tools(crew_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> list[ToolRow]:
    """Rows for the built-ins, then (with a crew file) the crew's own tools in the order declared."""
    rows = [_row(tool, source_of(name)) for name in builtin_names() if name not in _NEEDS_CONFIG
            for tool in _safe_build(ToolSpec(name=name))]
    if crew_file is None:
        return rows
    loaded = load_crew(crew_file)
    if env is None:
        env = envref.environment(loaded.source_dir, loaded.crew.runtime.env_file)
    shown = {(r.name, r.source) for r in rows}
    for spec in loaded.crew.tools:
        try:
            tools = build_tools(spec, env)
        except (ConfigError, ToolServerUnavailable) as exc:  # a dead server is a row, the rest are listed
            mcp = spec.name == "mcp"
            where = f"mcp {spec.extra.get('server_name') or 'mcp'}" if mcp else _source(None, spec)
            rows.append(ToolRow(spec.name, where, "", problem=str(exc)))
            continue
        for tool in tools:
            row = _row(tool, _source(tool, spec))
            if (row.name, row.source) not in shown:
                shown.add((row.name, row.source))
                rows.append(row)
    return rows


def _source(tool, spec: ToolSpec) -> str:
    if isinstance(tool, McpTool):
        return f"mcp {tool.server_name}"
    if spec.python:
        return f"python {spec.python}"
    return source_of(spec.name)


def _row(tool, source: str) -> ToolRow:
    first_line = (tool.description or "").strip().splitlines()[0:1]
    return ToolRow(tool.name, source, first_line[0] if first_line else "")


def _safe_build(spec: ToolSpec) -> list:
    """A built-in that cannot be built without settings still gets a row, from its name alone."""
    try:
        return build_tools(spec)
    except Exception as exc:  # a broken installed plugin must not hide the others
        return [_Unbuildable(spec.name, f"(cannot be built without settings: {exc})")]


@dataclass(frozen=True)
class _Unbuildable:
    name: str
    description: str
