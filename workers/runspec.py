"""A run's spec, stored in Redis by value when it is submitted. Workers never read the YAML file."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from crewq.config.schema import Crew


class RunSpec(BaseModel):
    run_id: str
    crew: Crew  # env: references still unresolved
    task: str  # the task input with {placeholders} filled
    waves: list[list[str]]  # the planner's Kahn waves
    source_file: str | None = None
    source_dir: str | None = None  # relative tool paths and the .env file start here
    inputs: dict[str, str] = Field(default_factory=dict)
    submitted_at: float = 0.0

    def wave_of(self, agent_id: str) -> int:
        for n, wave in enumerate(self.waves):
            if agent_id in wave:
                return n
        raise KeyError(agent_id)

    def sinks(self) -> list[str]:
        """Agents no one depends on: their outputs are the run's output."""
        needed = {dep for agent in self.crew.agents for dep in agent.depends_on}
        return [a.id for a in self.crew.scheduled() if a.id not in needed]

    def dependents(self, agent_id: str) -> list[str]:
        return [a.id for a in self.crew.agents if agent_id in a.depends_on]

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> "RunSpec":
        return cls.model_validate_json(text)

    def summary(self) -> dict[str, Any]:
        return {"name": self.crew.runtime.name, "agents": [a.id for a in self.crew.agents], "waves": self.waves}
