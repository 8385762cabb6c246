"""A run's state as the client API returns it: typed models built from the ledger's hashes.

Redis keeps every field as text; here numbers become numbers, timestamps floats, waves lists,
statuses enums, and "" (a cleared field) becomes None. `crewq status --json` and `crewq run --json`
print `RunState.model_dump(mode="json")`; `crewq runs` lists `RunInfo`s.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crewq.config.states import AgentStatus, RunStatus

_USAGE = ("input_tokens", "output_tokens", "llm_calls", "unpriced_calls", "cost_usd")
_JSON = ("waves", "restart_times")  # lists the ledger stores as JSON text
_TEXT = ("output",)  # "" is an answer here (an agent may reply with nothing), not a cleared field


def _from_hash(fields: Any) -> Any:
    """A ledger hash (all text) → the models' fields; a dict already typed passes through."""
    if not isinstance(fields, dict):
        return fields
    out = {k: v for k, v in fields.items() if v != "" or k in _TEXT}
    for key in _JSON:
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    if "usage" not in out:
        out["usage"] = {k: out.pop(k) for k in _USAGE if k in out}
    return out


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        return _from_hash(data)


class Usage(BaseModel):
    """LLM use, per agent and per run. `unpriced_calls` went to models without a price: then the
    cost is a lower bound, not the cost."""
    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    unpriced_calls: int = 0
    cost_usd: float = 0.0

    @field_validator("cost_usd")
    @classmethod
    def _cents(cls, value: float) -> float:
        return round(value, 6)  # Redis's float sums carry noise (0.030000000000000002)


class AgentState(_State):
    status: AgentStatus = AgentStatus.WAITING
    attempt: int = 0
    turns: int = 0
    hostname: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    output: str | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    restart_times: list[float] = Field(default_factory=list)
    stands_for: str | None = None  # a standby that was handed this agent's work
    fallback_of: str | None = None  # the agent (or fallback) given up before it
    served_by: str | None = None  # the standby whose output stands for this agent's
    first_attempt: int = 0  # the attempt the last `resume` started from: max_attempts counts from it

    @model_validator(mode="before")
    @classmethod
    def _turns(cls, data: Any) -> Any:
        # The hash keeps the index of the turn started last ("turn"); a restart clears it.
        if isinstance(data, dict) and "turns" not in data:
            turn = data.get("turn")
            data = {**data, "turns": int(turn) + 1 if turn not in (None, "") else 0}
        return data


class RunInfo(_State):
    """One line of `crewq runs`."""
    run_id: str
    name: str = ""
    status: RunStatus = RunStatus.QUEUED
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None


class RunState(RunInfo):
    """`Client.status()`: the run and each of its agents, in the crew's order."""
    waves: list[list[str]] = Field(default_factory=list)
    output: str | None = None
    failed_agent: str | None = None
    restarts: int = 0
    trace_id: str | None = None
    usage: Usage = Field(default_factory=Usage)
    agents: dict[str, AgentState] = Field(default_factory=dict)
    budgets: dict[str, float] = Field(default_factory=dict)  # the crew file's task.max_tokens / max_cost
    # Agents of the crew whose breaker is open now: seconds of cool-down left, None while half-open.
    breakers: dict[str, float | None] = Field(default_factory=dict)

    @classmethod
    def from_ledger(cls, run_id: str, run: dict[str, str], agents: dict[str, dict[str, str]],
                    budgets: dict[str, float] | None = None,
                    breakers: dict[str, float | None] | None = None) -> "RunState":
        # The run hash's own "agents" (the ids, as JSON) gives way to the agents' states.
        return cls.model_validate({**run, "run_id": run_id, "agents": agents, "budgets": budgets or {},
                                   "breakers": breakers or {}})


RUN_INFO_FIELDS = tuple(name for name in RunInfo.model_fields if name != "run_id")  # what `runs` reads


class HeldTask(BaseModel):
    """A task a worker holds now (the liveness record): a turn, a tool call or an advance."""
    model_config = ConfigDict(frozen=True)
    task_id: str
    task: str
    what: str  # "writer turn 2", "advance of wave 0"
    run_id: str | None = None
    agent_id: str | None = None
    since: float | None = None


class WorkerInfo(BaseModel):
    """`Client.workers()`, `crewq workers`: a live worker (its heartbeat is fresh), the queues it
    consumes (None: not said) and what it holds."""
    model_config = ConfigDict(frozen=True)
    host: str  # name#pid[.reconnections]: one incarnation of a worker
    queues: list[str] | None = None
    last_beat: float | None = None
    held: list[HeldTask] = Field(default_factory=list)
