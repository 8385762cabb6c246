"""The run's events as typed models: one per `type`, a pydantic union discriminated by `type`.

Every event has `id` (its stream id), `type`, `agent` (None for the run's own) and `ts`; the
rest depends on the type. `Ledger.event` checks what it writes against the model of its type, and
`parse` reads a stored event back as that model. An event whose type this version does not know
(written by a newer crewq, or by another tool) reads as a plain `Event` with its fields kept, so
old clients keep following new fleets. `crewq events --json` prints `model_dump(mode="json")`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter, ValidationError

from crewq.config.states import RunStatus


class Event(BaseModel):
    """Any event. Fields a model does not declare are kept (extra), for forward compatibility."""
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = ""
    type: str
    agent: str | None = None
    ts: float = 0.0


class RunSubmitted(Event):
    type: Literal["run_submitted"] = "run_submitted"
    name: str
    waves: list[list[str]]


class RunStarted(Event):
    type: Literal["run_started"] = "run_started"
    agents: list[str]


class WaveEmitted(Event):
    type: Literal["wave_emitted"] = "wave_emitted"
    wave: int
    agents: list[str]
    countdown: float = 0.0


class TurnStarted(Event):
    type: Literal["turn_started"] = "turn_started"
    turn: int
    host: str
    attempt: int = 0
    retries: int = 0


class LLMRetry(Event):
    type: Literal["llm_retry"] = "llm_retry"
    turn: int
    error: str
    countdown: float
    retries: int


class LLMThrottled(Event):
    """A turn waits for a fleet limit (`crewq limits`); it goes back to its queue for `seconds`."""
    type: Literal["llm_throttled"] = "llm_throttled"
    turn: int
    scope: str
    limit: str
    seconds: float


class LLMCall(Event):
    type: Literal["llm_call"] = "llm_call"
    turn: int
    provider: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None: the model has no price
    seconds: float
    tool_calls: list[str] = []


class _ToolEvent(Event):
    """One of the tool calls a turn's reply asked for: the `index`th, of tool `name`."""
    turn: int
    index: int
    name: str


class ToolSkipped(_ToolEvent):
    type: Literal["tool_skipped"] = "tool_skipped"
    reason: str


class ToolCall(_ToolEvent):
    type: Literal["tool_call"] = "tool_call"
    host: str | None = None


class ToolResult(_ToolEvent):
    type: Literal["tool_result"] = "tool_result"
    is_error: bool
    started_at: float
    finished_at: float
    chars: int


class AgentSucceeded(Event):
    type: Literal["agent_succeeded"] = "agent_succeeded"
    turns: int
    attempt: int
    seconds: float
    stands_for: str | None = None  # a standby: its output is now that agent's output too


class AgentFailed(Event):
    type: Literal["agent_failed"] = "agent_failed"
    turn: int
    attempt: int
    error: str


class AgentSkipped(Event):
    type: Literal["agent_skipped"] = "agent_skipped"
    because: str


class DecisionMade(Event):
    """The supervisor's decision on a failed attempt (restart, or give up)."""
    type: Literal["decision"] = "decision"
    action: str
    policy: str | None = None
    failed_attempt: int
    restarts: list[str] = []
    countdown: float = 0.0
    reason: str = ""
    error: str | None = None


class HandedOver(Event):
    """The supervisor gave `agent` up and hands its work to `fallback`, a standby agent that runs in the
    place of `stands_for` (the scheduled agent whose output it will produce) with the same task and inputs."""
    type: Literal["handed_over"] = "handed_over"
    fallback: str
    stands_for: str
    failed_attempt: int
    reason: str = ""


class Requeued(Event):
    """Work sent again: a dead worker's message, or a stalled run's next step."""
    type: Literal["requeued"] = "requeued"
    what: str
    dead_worker: str
    task_id: str | None = None


class RunFinished(Event):
    type: Literal["run_finished"] = "run_finished"
    status: RunStatus
    error: str | None = None


class RunResumed(Event):
    type: Literal["run_resumed"] = "run_resumed"
    agents: list[str]
    wave: int


def _kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in KNOWN else "other"


AnyEvent = Annotated[
    Union[
        Annotated[RunSubmitted, Tag("run_submitted")], Annotated[RunStarted, Tag("run_started")],
        Annotated[WaveEmitted, Tag("wave_emitted")], Annotated[TurnStarted, Tag("turn_started")],
        Annotated[LLMRetry, Tag("llm_retry")], Annotated[LLMThrottled, Tag("llm_throttled")],
        Annotated[LLMCall, Tag("llm_call")],
        Annotated[ToolSkipped, Tag("tool_skipped")], Annotated[ToolCall, Tag("tool_call")],
        Annotated[ToolResult, Tag("tool_result")], Annotated[AgentSucceeded, Tag("agent_succeeded")],
        Annotated[AgentFailed, Tag("agent_failed")], Annotated[AgentSkipped, Tag("agent_skipped")],
        Annotated[DecisionMade, Tag("decision")], Annotated[HandedOver, Tag("handed_over")],
        Annotated[Requeued, Tag("requeued")],
        Annotated[RunFinished, Tag("run_finished")], Annotated[RunResumed, Tag("run_resumed")],
        Annotated[Event, Tag("other")],
    ],
    Discriminator(_kind),
]
"""Any event, as its own model: `isinstance(event, AgentFailed)`, or `match` on it."""

# type → model, read off the union above (each Tag is its model's `type`; a test holds them equal).
KNOWN: dict[str, type[Event]] = {get_args(member)[1].tag: get_args(member)[0]
                                 for member in get_args(get_args(AnyEvent)[0]) if get_args(member)[0] is not Event}

_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def check(type_: str, agent: str | None, data: dict[str, Any]) -> None:
    """Raise (ValidationError) unless `data` fits the model of an event of `type_`: a writer and
    its model never drift apart."""
    _ADAPTER.validate_python({**data, "type": type_, "agent": agent})


def parse(record: dict[str, Any]) -> Event:
    """A stored event (`Ledger.events`) as its model."""
    try:
        return _ADAPTER.validate_python(record)
    except ValidationError:
        # A known type with other fields (written by another crewq version): still readable.
        return Event.model_validate(record)
