"""Settings read from the environment (`CREWQ_*`), typed, with named defaults."""

from __future__ import annotations

import os
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field

from .durations import parse_duration
from .policy import Policy

DAY = 86400.0


class Queues(BaseModel):
    """Celery queues: turns wait on the network (threads pool), tools may be heavier, control is tiny."""
    model_config = ConfigDict(frozen=True)
    turns: str = "crewq.turns"
    tools: str = "crewq.tools"
    control: str = "crewq.control"

    def all(self) -> list[str]:
        return [self.turns, self.tools, self.control]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    redis_url: str | None = Field(None, description="broker, result backend and ledger; None: embedded")
    key_prefix: str = "crewq"
    retention: float = Field(7 * DAY, description="how long a run's ledger and results are kept")
    visibility_timeout: float = Field(3600.0, description="Redis redelivery delay for a dead worker's task")
    llm_connect_timeout: float = 10.0
    llm_read_timeout: float = 120.0
    restart_backoff: float = Field(0.5, description="first wait before a restart; doubles per recent restart")
    restart_backoff_max: float = 30.0
    run_restart_cap: int = Field(10, description="restarts per run, whatever the windows say")
    heartbeat_interval: float = Field(2.0, description="how often a worker says it is alive")
    heartbeat_ttl: float = Field(6.0, description="silence after which a worker is dead and its turns requeued")
    leader_ttl: float = Field(5.0, description="a dead supervisor's lock expires after this; the standby takes over")
    sweep_interval: float = Field(1.0, description="how often the supervisor checks deadlines and workers")
    stall_after: float = Field(60.0, description="a run quiet this long with nothing in flight gets its next step again")
    queues: Queues = Queues()
    # The operator's fleet policy (CREWQ_POLICY), never the submitter's: see crewq.config.policy.
    policy: Policy = Field(default_factory=Policy.from_env)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        values: dict = {"redis_url": env.get("CREWQ_REDIS_URL") or env.get("REDIS_URL") or None}
        if env.get("CREWQ_PREFIX"):
            values["key_prefix"] = env["CREWQ_PREFIX"]
        for name in ("retention", "visibility_timeout", "llm_connect_timeout", "llm_read_timeout", "restart_backoff",
                     "restart_backoff_max", "heartbeat_interval", "heartbeat_ttl", "leader_ttl", "sweep_interval",
                     "stall_after"):
            raw = env.get(f"CREWQ_{name.upper()}")
            if raw:
                values[name] = parse_duration(raw)
        if env.get("CREWQ_RUN_RESTART_CAP"):
            values["run_restart_cap"] = int(env["CREWQ_RUN_RESTART_CAP"])
        values["policy"] = Policy.from_env(env)
        values.update(overrides)
        return cls(**values)
