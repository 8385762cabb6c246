"""crewq: multi-agent LLM crews on a Celery worker fleet over Redis.

    import crewq
    result = crewq.run("crew.yaml", inputs={"topic": "tides"})   # embedded default, or the fleet
    client = crewq.Client.from_env()                               # CREWQ_REDIS_URL
    run_id = client.submit("crew.yaml", inputs={"topic": "tides"})

The names below are the public API. They are imported on first use (PEP 562), so `import crewq`
and the CLI's start-up stay cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    # running crews
    "Client", "run",
    # crew files
    "Crew", "Agent", "load_crew", "load_crew_text",
    # tools
    "register_tool",
    # statuses, and what the client returns (events by type: crewq.workers.ledger.events)
    "RunStatus", "AgentStatus", "RunState", "RunInfo", "AgentState", "Event",
    # errors (the whole tree is `crewq.errors`)
    "CrewqError", "ConfigError", "ProviderError", "ToolError", "RunError",
    "__version__",
]

_LAZY = {
    "__version__": "crewq._version",  # reading the package metadata imports importlib.metadata: ~80 ms
    "Client": "crewq.scheduler.runs",
    "run": "crewq.scheduler.runs",
    "Crew": "crewq.config.schema",
    "Agent": "crewq.config.schema",
    "load_crew": "crewq.config.loader",
    "load_crew_text": "crewq.config.loader",
    "register_tool": "crewq.workers.tools.registry",
    "RunStatus": "crewq.config.states",
    "AgentStatus": "crewq.config.states",
    "RunState": "crewq.workers.ledger.state",
    "RunInfo": "crewq.workers.ledger.state",
    "AgentState": "crewq.workers.ledger.state",
    "Event": "crewq.workers.ledger.events",
    "CrewqError": "crewq.config.errors",
    "ConfigError": "crewq.config.errors",
    "ProviderError": "crewq.config.errors",
    "ToolError": "crewq.config.errors",
    "RunError": "crewq.config.errors",
}

if TYPE_CHECKING:
    from crewq._version import __version__
    from crewq.config.errors import ConfigError, CrewqError, ProviderError, RunError, ToolError
    from crewq.config.loader import load_crew, load_crew_text
    from crewq.config.schema import Agent, Crew
    from crewq.config.states import AgentStatus, RunStatus
    from crewq.scheduler.runs import Client, run
    from crewq.workers.ledger.events import Event
    from crewq.workers.ledger.state import AgentState, RunInfo, RunState
    from crewq.workers.tools.registry import register_tool


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crewq' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
