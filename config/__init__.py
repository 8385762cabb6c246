"""Declarations: the crew schema, YAML loading, `env:` references, settings. Imports nothing of crewq's."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, CrewqError

__all__ = ["Agent", "ConfigError", "Crew", "CrewqError", "LoadedCrew", "ToolSpec", "load_crew", "load_crew_text"]

# Imported on first use (PEP 562): `crewq.config.errors` is imported by every CLI command, and the
# schema's pydantic models are not needed for `crewq --help`.
_LAZY = {"LoadedCrew": ".loader", "load_crew": ".loader", "load_crew_text": ".loader",
         "Agent": ".schema", "Crew": ".schema", "ToolSpec": ".schema"}

if TYPE_CHECKING:
    from .loader import LoadedCrew, load_crew, load_crew_text
    from .schema import Agent, Crew, ToolSpec


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
