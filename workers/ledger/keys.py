"""Every Redis key crewq writes, named in one place.

    {p}:runs                          zset   run ids by creation time
    {p}:failures                      stream FailureReports from failed turns (the supervisor reads it)
    {p}:run:{run}                     hash   the run's status projection
    {p}:run:{run}:spec                string the crew spec by value, env: references unresolved
    {p}:run:{run}:events              stream the run's append-only event log (source of truth)
    {p}:run:{run}:wave:{n}            string "advanced" marker: SET NX makes `advance` act once
    {p}:run:{run}:agent:{agent}       hash   per-agent state: status, attempt, output, usage, host
    {p}:run:{run}:agent:{agent}:replies  hash  "{attempt}:{turn}" → the recorded LLM reply
    {p}:run:{run}:agent:{agent}:results  hash  "{attempt}:{turn}:{i}" → a recorded tool result
    {p}:run:{run}:agent:{agent}:calls    hash  "{attempt}:{turn}:{try}" → LLM call index
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "crewq"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    @property
    def failures(self) -> str:
        return f"{self.prefix}:failures"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def spec(self, run_id: str) -> str:
        return f"{self.run(run_id)}:spec"

    def events(self, run_id: str) -> str:
        return f"{self.run(run_id)}:events"

    def wave(self, run_id: str, wave: int) -> str:
        return f"{self.run(run_id)}:wave:{wave}"

    def agent(self, run_id: str, agent_id: str) -> str:
        return f"{self.run(run_id)}:agent:{agent_id}"

    def replies(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:replies"

    def results(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:results"

    def calls(self, run_id: str, agent_id: str) -> str:
        return f"{self.agent(run_id, agent_id)}:calls"

    def run_pattern(self, run_id: str) -> str:
        return f"{self.run(run_id)}*"
