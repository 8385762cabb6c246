"""Declarations: the crew schema, YAML loading, `env:` references, settings. Imports nothing of crewq's."""

from .errors import ConfigError, CrewqError
from .loader import LoadedCrew, load_crew, load_crew_text
from .schema import Agent, Crew, ToolSpec

__all__ = ["Agent", "ConfigError", "Crew", "CrewqError", "LoadedCrew", "ToolSpec", "load_crew", "load_crew_text"]
