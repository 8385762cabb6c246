"""Declarations: the crew schema, YAML loading, `env:` references, settings. Imports nothing of crewq's.

The names below are imported on first use (PEP 562): `crewq.config.errors` alone stays cheap,
which the CLI's start-up needs."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["Agent", "ConfigError", "Crew", "CrewqError", "LoadedCrew", "ToolSpec", "load_crew", "load_crew_text"]

_LAZY = {"ConfigError": ".errors", "CrewqError": ".errors", "LoadedCrew": ".loader", "load_crew": ".loader",
         "load_crew_text": ".loader", "Agent": ".schema", "Crew": ".schema", "ToolSpec": ".schema"}

if TYPE_CHECKING:
    from .errors import ConfigError, CrewqError
    from .loader import LoadedCrew, load_crew, load_crew_text
    from .schema import Agent, Crew, ToolSpec


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
