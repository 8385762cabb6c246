"""The crew file, as typed models. Parsing lives in `loader`; runtime objects live elsewhere.

The keys are Routex's (a Routex crew file loads unchanged); crewq's own additions are marked.
Unknown keys are errors, so that a typo is reported with the nearest valid key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUseDefault

from . import envref
from .durations import parse_duration
from .errors import MissingEnvError


def _from_env(value: Any, info: ValidationInfo) -> Any:
    """Routex reads `env:VAR` in any value. A secret (a string setting) stays a reference until the worker
    uses it; a typed setting that is no secret (a level, a policy, a duration, memory.*) is read when the
    file is loaded, from the loader's environment (the process over `env_file`). Unset with no default:
    the key's default, as Routex's `envOr` does, and the loader warns."""
    if not envref.is_ref(value):
        return value
    context = info.context or {}
    try:
        return envref.resolve(value, context.get("env"))
    except MissingEnvError as exc:
        context.setdefault("unset", []).append((info.field_name, exc.var))
        raise PydanticUseDefault() from None


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value  # Routex: `tools:` or `depends_on:` left empty


FromEnv = BeforeValidator(_from_env)
EmptyList = BeforeValidator(_none_as_empty)
# (pydantic runs Before validators last-first: env: is read before the value is parsed)
# A year: longer is a mistake (or `1e309`), not a plan.
MAX_DURATION = 365 * 86400.0
Duration = Annotated[float, BeforeValidator(parse_duration), FromEnv,
                     Field(le=MAX_DURATION, description="seconds, or '30s', '2m', '1h30m'; or env:VAR")]
RestartPolicy = Annotated[Literal["one_for_one", "rest_for_one", "one_for_all"], FromEnv]
LogLevel = Annotated[Literal["debug", "info", "warn", "warning", "error"],
                     BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v), FromEnv]
AgentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]


# A queue's name is the Redis key of its list, so it must never be a key of kombu, Celery or crewq: the
# wrong type there (`unacked_index` turned into a list) stops every worker and the supervisor. The pattern
# rules out whole families: no `:` (every crewq ledger key is `{prefix}:...`, whatever the prefix), no
# leading `_` or `/` (kombu's `_kombu.binding.*`, fanout `/{db}.*`). The prefixes rule out the rest by
# name: kombu's `unacked`, `unacked_index`, `unacked_mutex`; Celery's results, chords, events and pidbox
# (`celery*`); crewq's own queues (`crewq.turns` ...).
RESERVED_QUEUE_PREFIXES = ("unacked", "_kombu", "kombu", "celery", "crewq")


QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]


def reserved_queue(name: str) -> bool:
    return name.lower().startswith(RESERVED_QUEUE_PREFIXES) or "pidbox" in name

BUILTIN_ROLES = ("planner", "researcher", "writer", "critic", "executor")
DEFAULT_TOTAL_TOOL_CALLS, DEFAULT_DUPLICATE_TOOL_CALLS = 20, 2  # Routex's


class Model(BaseModel):
    # NaN and infinities pass every comparison check, so they are refused outright.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False)


class Runtime(Model):
    name: str = "crew"
    llm_provider: str | None = Field(None, description="default provider for every agent")
    model: str | None = None
    api_key: str | None = Field(None, description="use env:VAR; resolved on the worker")
    base_url: str | None = None
    log_level: LogLevel = Field("info", description="debug | info | warn | error, any case")
    env_file: str | None = Field(None, description=".env file, relative to the crew file's folder; '.' is .env")


class TaskSpec(Model):
    input: str = Field("", description="the crew's task; a {placeholder} is filled from --input key=value, "
                                        "else it is plain text (Routex)")
    output_file: str | None = Field(None, description="where the final output is written")
    max_duration: Duration | None = Field(None, description="the whole run's deadline")
    max_tokens: int | None = Field(None, gt=0, description="crewq: the run's token budget (input + output, every "
                                   "agent); no LLM call starts once it is spent")
    max_cost: float | None = Field(None, gt=0, description="crewq: the run's budget in USD, from the price table; "
                                   "no LLM call starts once it is spent")


class LLMFallback(Model):
    """crewq: one fallback LLM, tried in order when the agent's primary is unavailable."""
    provider: str
    model: str | None = None
    api_key: str | None = Field(None, description="use env:VAR; resolved on the worker")
    base_url: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0, le=10_000_000)


class LLMOverride(Model):
    provider: str | None = None
    model: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0, le=10_000_000)
    fallback: list[LLMFallback] = Field(default_factory=list, description="crewq: tried in order when the "
                                        "primary's breaker is open or its retries are used up")


class ScriptToolCall(Model):
    """crewq: one tool call the scripted provider asks for."""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptError(Model):
    """crewq: an error the scripted provider raises instead of replying."""
    status: int | None = Field(None, description="HTTP-like status: 429, 5xx and 529 are transient")
    retry_after: Duration | None = None
    message: str = "scripted error"


class ScriptStep(Model):
    """crewq: one reply of the offline `scripted` provider, played in order per agent."""
    text: str | None = Field(None, description="the reply; {input} and {tool_results} are filled in")
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)
    latency: Duration = 0.0
    error: ScriptError | Literal["crash"] | None = None
    input_tokens: int = Field(0, ge=0, le=10**9)
    output_tokens: int = Field(0, ge=0, le=10**9)


class AgentBreaker(Model):
    """crewq: the agent's own circuit breaker, across runs of the crew (by `runtime.name`), fleet-wide."""
    failures: int = Field(5, ge=1, le=10_000, description="consecutive runs that gave the agent up open it")
    cooldown: Duration = Field(60.0, gt=0, description="how long it stays open before one run probes it")


class Agent(Model):
    id: AgentId
    role: str = Field("", description="free text; planner, researcher, writer, critic, executor have built-in prompts")
    goal: str = ""
    backstory: str = ""
    tools: Annotated[list[str], EmptyList] = Field(default_factory=list)
    depends_on: Annotated[list[str], EmptyList] = Field(default_factory=list,
                                                         validation_alias=AliasChoices("depends_on", "depends"))
    llm: LLMOverride | None = None
    restart: RestartPolicy = "one_for_one"
    max_restarts: int = Field(3, ge=0, le=1000)
    restart_window: Duration = 60.0
    max_attempts: int = Field(5, ge=1, le=1000, description="attempts per run in all, whatever the window says")
    max_retries: int = Field(4, ge=0, le=1000, description="transient LLM errors retried inside a turn")
    max_backoff: Duration = Field(60.0, gt=0, description="crewq: the longest wait before such a retry")
    timeout: Duration | None = Field(None, description="the agent's wall-clock limit over all its turns")
    max_turns: int | None = Field(None, ge=1, le=10_000, description="unset (Routex): max_total_tool_calls + 2 turns")
    max_total_tool_calls: int = Field(DEFAULT_TOTAL_TOOL_CALLS, ge=0, le=100_000, description="per attempt; 0 means the default")
    max_duplicate_tool_calls: int = Field(DEFAULT_DUPLICATE_TOOL_CALLS, ge=0, le=100_000, description="identical calls (name and "
                                          "arguments) allowed; 0 means the default")
    script: list[ScriptStep] = Field(default_factory=list, description="crewq: replies for the scripted provider")
    queue: QueueName | None = Field(None, description="crewq: the Celery queue its turns go to (e.g. a GPU or "
                                                      "local-Ollama host)")
    standby: bool = Field(False, description="crewq: never scheduled on its own; runs only as another agent's fallback")
    fallback: Annotated[list[str], EmptyList] = Field(default_factory=list, description="crewq: standby agents that "
                                                      "take over, in order, when the supervisor gives this one up")
    breaker: AgentBreaker = Field(default_factory=AgentBreaker, description="crewq: opens after `failures` "
                                  "consecutive runs gave the agent up; while open, turns go straight to the fallback")

    @model_validator(mode="after")
    def _queue_not_reserved(self) -> "Agent":
        if self.queue and reserved_queue(self.queue):
            raise ValueError(f"agent {self.id!r}: queue {self.queue!r} is a Redis key of kombu, Celery or crewq, "
                             f"not a queue a crew may name (reserved: names starting with "
                             f"{', '.join(RESERVED_QUEUE_PREFIXES)}, or with 'pidbox' in them)")
        return self

    @field_validator("max_total_tool_calls", "max_duplicate_tool_calls")
    @classmethod
    def _zero_is_default(cls, value: int, info: ValidationInfo) -> int:
        # Routex: 0 (Go's zero value, what an unset key reads as) means the default, 20 and 2.
        if value:
            return value
        return DEFAULT_TOTAL_TOOL_CALLS if info.field_name == "max_total_tool_calls" else DEFAULT_DUPLICATE_TOOL_CALLS

    @property
    def turn_limit(self) -> int:
        """Routex has no turn limit: unset, the tool budget bounds the agent. Each turn that asks for tools
        runs one of its calls or is refused, and the model gets one more turn to answer once the budget
        is used up; asking again then fails the agent (never a loop until the timeout)."""
        return self.max_turns or self.max_total_tool_calls + 2


class ToolSpec(Model):
    name: str
    api_key: str | None = None
    base_dir: str | None = Field(None, description="file tools: the folder they are confined to")
    max_results: int | None = Field(None, gt=0, le=10_000)
    extra: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = Field(default_factory=dict)
    python: str | None = Field(None, description="crewq: a custom tool, 'package.module:function'")
    description: str | None = Field(None, description="crewq: overrides the tool's description")


class Memory(Model):
    backend: Annotated[Literal["none", "inmem", "inmemory", "memory", "redis"], FromEnv] = "inmem"
    ttl: Duration | None = None
    redis_url: str | None = None


class Observability(Model):
    tracing: bool = False
    metrics: bool = False
    jaeger_endpoint: str | None = None
    metrics_addr: str | None = None


# -- crewq: schedules for `crewq beat` ---------------------------------------------------------------

CRON_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


def parse_cron(text: str):
    """A cron expression (five fields: minute hour day-of-month month day-of-week, or @daily...) as
    Celery's `crontab`, in the beat's timezone (UTC unless configured). ValueError names the problem."""
    from celery.schedules import crontab

    fields = CRON_ALIASES.get(text.strip(), text).split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has five fields (minute hour day-of-month month day-of-week), "
                         f"not {len(fields)}: {text!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except Exception as exc:  # celery raises ValueError, and a few parser errors of its own
        raise ValueError(f"invalid cron expression {text!r}: {exc}") from None


class Schedule(Model):
    """crewq: when `crewq beat` submits this crew (exactly one of cron and every), with which inputs."""
    cron: str | None = Field(None, description="'minute hour day-of-month month day-of-week' (UTC), or @daily...")
    every: Duration | None = Field(None, gt=0, description="an interval: '30s', '15m', '6h'")
    inputs: dict[str, str] = Field(default_factory=dict, description="fill the task's {placeholders}")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "Schedule":
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule has exactly one of cron and every")
        return self


class Crew(Model):
    runtime: Runtime = Runtime()
    task: TaskSpec = TaskSpec()
    agents: list[Agent] = Field(min_length=1)
    tools: Annotated[list[ToolSpec], EmptyList] = Field(default_factory=list)
    memory: Memory | None = None
    observability: Observability | None = None
    schedule: Schedule | None = Field(None, description="crewq: when `crewq beat` submits this crew")

    def agent(self, agent_id: str) -> Agent:
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        raise KeyError(agent_id)

    def scheduled(self) -> list[Agent]:
        """The agents the plan schedules: every one but the standbys."""
        return [a for a in self.agents if not a.standby]

    def tool_spec(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def llm_of(self, agent: Agent) -> LLMOverride:
        """The agent's effective LLM settings: its `llm:` block over the runtime's defaults."""
        own = agent.llm or LLMOverride()
        return LLMOverride(
            provider=own.provider or self.runtime.llm_provider,
            model=own.model or self.runtime.model,
            api_key=own.api_key if own.api_key is not None else self.runtime.api_key,
            base_url=own.base_url or self.runtime.base_url,
            temperature=own.temperature,
            max_tokens=own.max_tokens,
            fallback=own.fallback,
        )


def json_schema() -> dict[str, Any]:
    schema = Crew.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crewq crew file"
    return schema
