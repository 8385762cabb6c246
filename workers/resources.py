"""Per-process caches of what a run needs on this worker: its environment and its agents' tools.

A run's spec never changes, so tools (and, later, MCP discoveries) are built once per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from crewq.config import envref
from crewq.config.errors import ConfigError
from crewq.config.policy import GuardedEnv, Policy

from .runspec import RunSpec
from .tools.base import Tool
from .tools.files import FileTool
from .tools.registry import toolbox

_LOCK = threading.Lock()
_TOOLBOXES: "OrderedDict[tuple[str, str], dict[str, Tool]]" = OrderedDict()
_MAX = 256


def environment(spec: RunSpec, policy: Policy) -> GuardedEnv:
    """os.environ over the crew's .env file, when the crew's folder is reachable from this worker;
    every `env:` reference resolved from it is checked against the fleet policy."""
    env_file = spec.crew.runtime.env_file
    if env_file and spec.source_dir and Path(spec.source_dir).is_dir():
        try:
            return GuardedEnv(envref.environment(spec.source_dir, env_file), policy)
        except ConfigError:
            pass  # a missing .env on this machine: references then fail by variable name
    return GuardedEnv(envref.environment(None, None), policy)


def tools_for(spec: RunSpec, agent_id: str, policy: Policy) -> dict[str, Tool]:
    key = (spec.run_id, agent_id)
    with _LOCK:
        if key in _TOOLBOXES:
            _TOOLBOXES.move_to_end(key)
            return _TOOLBOXES[key]
    env = environment(spec, policy)
    tools = toolbox(spec.crew, spec.crew.agent(agent_id), env=env)
    for tool in tools.values():
        if isinstance(tool, FileTool):  # refused when the agent starts, not at its first call
            tool.check_root(spec.source_dir, env)
    with _LOCK:
        _TOOLBOXES[key] = tools
        while len(_TOOLBOXES) > _MAX:
            _TOOLBOXES.popitem(last=False)
    return tools
