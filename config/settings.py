"""Settings read from the environment (`CREWQ_*`), typed, with named defaults.

Every `CREWQ_*` variable crewq reads is a field here (the README's settings table lists them); no
other module reads one from `os.environ`. A field `name` is read from `CREWQ_NAME` (`key_prefix`
from `CREWQ_PREFIX`, `redis_url` also from `REDIS_URL`). Durations take seconds or `30s`, `2m`,
`1h30m`, `7d`. A value that cannot be read is a ConfigError naming the variable.

Processes build one `Settings` (the app keeps it); the process-wide switches that are read where
no app is at hand (log format, tracing, the price file) use `Settings.env_value(name)`.
"""

from __future__ import annotations

import os
import typing
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .durations import parse_duration
from .errors import ConfigError
from .policy import Policy

DAY = 86400.0
# Fields whose variable is not CREWQ_<NAME>, and fields no variable sets.
ENV_NAMES = {"key_prefix": "CREWQ_PREFIX"}
NOT_FROM_ENV = {"queues", "policy"}  # policy: read by Policy.from_env (CREWQ_POLICY)
OFF = ("", "0", "off", "false", "none")


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

    redis_url: str | None = Field(None, description="broker, result backend and ledger (else `REDIS_URL`); "
                                                    "unset: `crewq run` starts a private Redis")
    key_prefix: str = Field("crewq", description="prefix of every ledger key in Redis")
    retention: float = Field(7 * DAY, description="how long a run's ledger and results are kept")
    visibility_timeout: float = Field(3600.0, description="Redis redelivery delay for a dead worker's task")
    llm_connect_timeout: float = Field(10.0, description="connecting to an LLM provider")
    llm_read_timeout: float = Field(120.0, description="one LLM call, at most (cut by agent and run limits)")
    restart_backoff: float = Field(0.5, description="first wait before a restart; doubles per recent restart")
    restart_backoff_max: float = Field(30.0, description="longest wait before a restart")
    run_restart_cap: int = Field(10, description="restarts per run, whatever the windows say")
    heartbeat_interval: float = Field(2.0, description="how often a worker says it is alive")
    heartbeat_ttl: float = Field(6.0, description="silence after which a worker is dead and its turns requeued")
    leader_ttl: float = Field(5.0, description="a dead supervisor's lock expires after this; the standby takes over")
    sweep_interval: float = Field(1.0, description="how often the supervisor checks deadlines and workers")
    stall_after: float = Field(60.0, description="a run quiet this long with nothing in flight gets its next "
                                                 "step again")
    soft_shutdown_timeout: float = Field(20.0, description="on SIGQUIT a worker's running tasks get this long "
                                                           "before their messages go back to the queue")
    log_format: Literal["text", "json"] | None = Field(None, description="`json`: one JSON object a log line; "
                                                                        "`text` (unset: text, and Celery's own "
                                                                        "format under `celery -A` commands)")
    tracing: Literal["off", "otlp", "console"] = Field("off", description="OpenTelemetry spans (needs the "
                                                                          "`tracing` extra)")
    pricing: str | None = Field(None, description="a JSON price file that extends the built-in prices")
    crews_dir: str | None = Field(None, description="the folder of crew files whose schedules `crewq beat` follows")
    limits: str | None = Field(None, description="fleet limits each worker presets at start-up for scopes with none")
    queues: Queues = Queues()
    # The operator's fleet policy (CREWQ_POLICY), never the submitter's: see crewq.config.policy.
    policy: Policy = Field(default_factory=Policy.from_env)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = _read(name, env)
            if raw is not None:
                values[name] = raw
        values["policy"] = Policy.from_env(env)  # CREWQ_POLICY: a name or a file (config/policy.py)
        values.update(overrides)
        return _validated(cls, values)

    @classmethod
    def env_value(cls, name: str, env: Mapping[str, str] | None = None) -> Any:
        """One setting from the environment (its default when unset), without reading the others."""
        raw = _read(name, os.environ if env is None else env)
        if raw is None:
            return cls.model_fields[name].default
        return getattr(_validated(cls, {name: raw}), name)


def env_var(name: str) -> str:
    """The variable that sets the field `name`."""
    return ENV_NAMES.get(name, f"CREWQ_{name.upper()}")


def _read(name: str, env: Mapping[str, str]) -> Any:
    """The field's raw value from `env`, parsed as its type; None when unset (the default applies)."""
    if name in NOT_FROM_ENV:
        return None
    var = env_var(name)
    raw = env.get(var) or (env.get("REDIS_URL") if name == "redis_url" else None)
    if not raw:
        return None
    kind = typing.get_args(Settings.model_fields[name].annotation) or (Settings.model_fields[name].annotation,)
    try:
        if float in kind:
            return parse_duration(raw)
        if int in kind:
            return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{raw!r}: {exc}", key=var) from None
    if name == "tracing" and raw.strip().lower() in OFF:
        return "off"
    if name in ("tracing", "log_format"):
        return raw.strip().lower()
    return raw


def _validated(cls: type[Settings], values: dict[str, Any]) -> Settings:
    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = env_var(str(first["loc"][0])) if first["loc"] else None
        raise ConfigError(f"{first['msg']} (got {first.get('input')!r})", key=key) from None
