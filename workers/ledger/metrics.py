"""Fleet-wide counters, kept in Redis as events are written; the supervisor serves them to Prometheus.

`record` runs inside the pipeline of every `Ledger.event`, so counting costs no extra round trip.

    {p}:metrics   hash   "<metric>|<label>=<value>,..." → number

A field is one sample of a counter, or one part of a histogram: `<name>_sum`, and `<name>_bin` with
an `le` label counting the observations that fell in that bucket alone (`le="+Inf"`: above the last
bound). An observation so costs one bucket increment and the sum, not one write per cumulative
bucket; the reader (`crewq.scheduler.metrics`) accumulates the bins into Prometheus's cumulative
buckets and their total into `_count`. `METRICS` names every metric, its kind, help text and labels.

Labels stay few and bounded: provider, model, tool, status, policy, action, agent id, a fleet limit's
scope (provider or provider/model, set by the operator) and kind. Never a run id
(one series per run would grow without end), never text from a conversation. The labels whose values
a crew chooses, `agent` (and `fallback`, an agent too), `tool` and `model`: each keeps the first
`LABEL_CAP` distinct values the fleet sees (a registry in the same hash, `_known|agent=<id>` and
`_known_count|label=agent`, which the reader ignores) and counts any later one as `other`, so a
5,000-agent crew adds a hundred series, not 56,000, and the hash stays bounded without expiring the
counters. Deleting `{p}:metrics` starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crewq.config.states import AgentStatus

from .keys import Keys

# Buckets (seconds): an LLM call takes 0.1 s to minutes, an agent seconds to an hour.
LLM_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60)
AGENT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "counter" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


METRICS = {m.name: m for m in (
    Metric("crewq_events_total", "counter", "Events written to run logs, by type", ("type",)),
    Metric("crewq_runs_submitted_total", "counter", "Runs submitted"),
    Metric("crewq_runs_finished_total", "counter", "Runs ended, by final status", ("status",)),
    Metric("crewq_runs_resumed_total", "counter", "Failed or cancelled runs resumed"),
    Metric("crewq_waves_emitted_total", "counter", "Waves of agents emitted"),
    Metric("crewq_turns_total", "counter", "Agent turns started (one LLM call each, retries included)",
           ("agent",)),
    Metric("crewq_agents_finished_total", "counter", "Agent attempts ended, by outcome",
           ("agent", "status")),
    Metric("crewq_agent_seconds", "histogram", "Wall-clock time of a successful agent attempt",
           ("agent",), AGENT_BUCKETS),
    Metric("crewq_agent_turns", "histogram", "Turns a successful agent attempt took", ("agent",),
           (1, 2, 3, 5, 8, 13, 21)),
    Metric("crewq_llm_calls_total", "counter", "LLM calls answered", ("provider", "model")),
    Metric("crewq_llm_retries_total", "counter", "Transient LLM errors retried inside a turn"),
    Metric("crewq_llm_throttled_total", "counter", "Turns put back to wait for a fleet limit (rpm, tpm, "
           "concurrency, retry-after)", ("scope", "limit")),
    Metric("crewq_llm_throttled_seconds_total", "counter", "Seconds turns were put back for, waiting for a fleet "
           "limit", ("scope", "limit")),
    Metric("crewq_llm_tokens_total", "counter", "LLM tokens", ("provider", "model", "direction")),
    Metric("crewq_llm_cost_usd_total", "counter", "Estimated LLM cost in US dollars", ("provider", "model")),
    Metric("crewq_llm_seconds", "histogram", "Duration of an answered LLM call", ("provider", "model"),
           LLM_BUCKETS),
    Metric("crewq_tool_calls_total", "counter", "Tool calls, by tool and outcome (ok, error, skipped)",
           ("tool", "status")),
    Metric("crewq_tool_seconds", "histogram", "Duration of a tool call", ("tool",), TOOL_BUCKETS),
    Metric("crewq_decisions_total", "counter", "Supervisor decisions on agent failures",
           ("action", "policy")),
    Metric("crewq_restarts_total", "counter", "Agent restarts decided by the supervisor, by policy",
           ("policy",)),
    Metric("crewq_requeues_total", "counter", "Turns and tool calls requeued from dead workers"),
    Metric("crewq_handovers_total", "counter", "Given-up agents whose work the supervisor handed to a fallback agent",
           ("agent", "fallback")),
)}


def _escape(value: Any) -> str:
    text = "" if value is None else str(value)
    for char in "%,=|\x00":
        text = text.replace(char, f"%{ord(char):02X}")
    return text


def _unescape(text: str) -> str:
    for char in "\x00|=,%":
        text = text.replace(f"%{ord(char):02X}", char)
    return text


def field(name: str, **labels: Any) -> str:
    return name + "|" + ",".join(f"{k}={_escape(v)}" for k, v in sorted(labels.items()))


def _template(name: str, slots: dict[str, str], **labels: Any) -> str:
    """`field` with each capped label left as its slot, unescaped, for the script to fill in."""
    return name + "|" + ",".join(f"{k}={slots[k] if k in slots else _escape(v)}"
                                 for k, v in sorted({**labels, **slots}.items()))


def parse_field(text: str) -> tuple[str, dict[str, str]]:
    """The inverse of `field`: (name, labels)."""
    name, _, rest = text.partition("|")
    labels = {}
    for pair in rest.split(",") if rest else ():
        key, _, value = pair.partition("=")
        labels[key] = _unescape(value)
    return name, labels


# Labels whose values a crew chooses, and the registry each counts in (a fallback is an agent too).
CAPPED_LABELS = {"agent": "agent", "fallback": "agent", "tool": "tool", "model": "model"}
LABEL_CAP = 100  # distinct values of each registry, fleet-wide; later ones are counted as OTHER
OTHER = "other"
_SLOT = "\x00"  # + the label's index: where its value goes in a field template (`_escape` takes NUL out)

# One round trip still: the script is queued on the event's pipeline like the plain increments.
_CAPPED_WRITE = """
local hash, n, cap, other = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local values = {}
for i = 1, n do
  local registry, value = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local known, count = '_known|' .. registry .. '=' .. value, '_known_count|label=' .. registry
  if redis.call('HEXISTS', hash, known) == 0 then
    if tonumber(redis.call('HGET', hash, count) or '0') < cap then
      redis.call('HSET', hash, known, 1)
      redis.call('HINCRBY', hash, count, 1)
    else
      value = other
    end
  end
  values[i] = value
end
for j = 4 + 2 * n, #ARGV, 3 do
  local f = ARGV[j + 1]
  for i = 1, n do
    local slot = '\\0' .. (i - 1)
    local at = string.find(f, slot, 1, true)
    f = string.sub(f, 1, at - 1) .. values[i] .. string.sub(f, at + #slot)
  end
  redis.call(ARGV[j], hash, f, ARGV[j + 2])
end
"""


def _write(pipe, key: str, writes: list[tuple[str, str, float, dict[str, Any]]], **labels: Any) -> None:
    """Increments (command, metric, amount, labels of that write alone) of samples sharing `labels`; each
    capped label's value is kept or folded into OTHER in Redis, by the script, as one step."""
    capped = [name for name in CAPPED_LABELS if name in labels]
    if not capped:
        for command, name, amount, extra in writes:
            pipe.execute_command(command, key, field(name, **labels, **extra), amount)
        return
    slots = {name: f"{_SLOT}{i}" for i, name in enumerate(capped)}
    templates = [(command, _template(name, slots, **labels, **extra), amount) for command, name, amount, extra in writes]
    pipe.eval(_CAPPED_WRITE, 1, key, len(capped), LABEL_CAP, OTHER,
              *(part for name in capped for part in (CAPPED_LABELS[name], _escape(labels[name]))),
              *(part for write in templates for part in write))


def _count(pipe, key: str, name: str, amount: int = 1, **labels: Any) -> None:
    _write(pipe, key, [("HINCRBY", name, amount, {})], **labels)


def _observe(pipe, key: str, name: str, value: float, **labels: Any) -> None:
    """A histogram observation: the sum and the one bucket the value falls in (count = the bins' total)."""
    bound = next((b for b in METRICS[name].buckets if value <= b), "+Inf")
    _write(pipe, key, [("HINCRBYFLOAT", name + "_sum", value, {}), ("HINCRBY", name + "_bin", 1, {"le": bound})],
           **labels)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Ops:
    """Stands in for a pipeline in `record` (and `Ledger.add_usage`): keeps the writes as (command, key,
    field, amount), for a script that makes them only if its guard wrote (`Ledger._guarded_event`)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, str, Any]] = []
        # Writes with a capped label (`_CAPPED_WRITE`, a script of its own): made after the guard wrote,
        # in one more round trip (the guard's script cannot call another script).
        self.deferred: list[tuple[Any, ...]] = []

    def hincrby(self, key: str, name: str, amount: int = 1) -> None:
        self.writes.append(("HINCRBY", key, name, amount))

    def hincrbyfloat(self, key: str, name: str, amount: float) -> None:
        self.writes.append(("HINCRBYFLOAT", key, name, amount))

    def execute_command(self, command: str, key: str, name: str, amount: Any) -> None:
        self.writes.append((command, key, name, amount))

    def eval(self, *args: Any) -> None:
        self.deferred.append(args)


def record(pipe, keys: Keys, type_: str, agent: str | None, data: dict[str, Any]) -> None:
    """Count one event (queued on the caller's pipeline; nothing is read)."""
    key = keys.metrics
    handler = _HANDLERS.get(type_)
    if handler is None:
        _count(pipe, key, "crewq_events_total", type=type_)
    else:  # its own counter counts it once: `crewq_events_total` of its type is read from that (EVENT_COUNTERS)
        handler(pipe, key, agent or "", data)


def _run_submitted(pipe, key, agent, data):
    _count(pipe, key, "crewq_runs_submitted_total")


def _run_finished(pipe, key, agent, data):
    _count(pipe, key, "crewq_runs_finished_total", status=data.get("status", "?"))


def _run_resumed(pipe, key, agent, data):
    _count(pipe, key, "crewq_runs_resumed_total")


def _wave_emitted(pipe, key, agent, data):
    _count(pipe, key, "crewq_waves_emitted_total")


def _turn_started(pipe, key, agent, data):
    _count(pipe, key, "crewq_turns_total", agent=agent)


def _agent_succeeded(pipe, key, agent, data):
    _count(pipe, key, "crewq_agents_finished_total", agent=agent, status=AgentStatus.SUCCEEDED.value)
    seconds, turns = _number(data.get("seconds")), _number(data.get("turns"))
    if seconds is not None:
        _observe(pipe, key, "crewq_agent_seconds", seconds, agent=agent)
    if turns is not None:
        _observe(pipe, key, "crewq_agent_turns", turns, agent=agent)


def _agent_failed(pipe, key, agent, data):
    _count(pipe, key, "crewq_agents_finished_total", agent=agent, status=AgentStatus.FAILED.value)


def _agent_skipped(pipe, key, agent, data):
    _count(pipe, key, "crewq_agents_finished_total", agent=agent, status=AgentStatus.SKIPPED.value)


def _llm_call(pipe, key, agent, data):
    labels = {"provider": data.get("provider") or "?", "model": data.get("model") or "?"}
    _count(pipe, key, "crewq_llm_calls_total", **labels)
    for direction in ("input", "output"):
        tokens = _number(data.get(f"{direction}_tokens"))
        if tokens:
            _count(pipe, key, "crewq_llm_tokens_total", int(tokens), direction=direction, **labels)
    cost = _number(data.get("cost_usd"))
    if cost:
        _write(pipe, key, [("HINCRBYFLOAT", "crewq_llm_cost_usd_total", cost, {})], **labels)
    seconds = _number(data.get("seconds"))
    if seconds is not None:
        _observe(pipe, key, "crewq_llm_seconds", seconds, **labels)


def _llm_retry(pipe, key, agent, data):
    _count(pipe, key, "crewq_llm_retries_total")


def _llm_throttled(pipe, key, agent, data):
    labels = {"scope": data.get("scope") or "?", "limit": data.get("limit") or "?"}
    _count(pipe, key, "crewq_llm_throttled_total", **labels)
    seconds = _number(data.get("seconds"))
    if seconds:
        pipe.hincrbyfloat(key, field("crewq_llm_throttled_seconds_total", **labels), seconds)


def _tool_result(pipe, key, agent, data):
    tool = data.get("name") or "?"
    _count(pipe, key, "crewq_tool_calls_total", tool=tool, status="error" if data.get("is_error") else "ok")
    started, finished = _number(data.get("started_at")), _number(data.get("finished_at"))
    if started is not None and finished is not None:
        _observe(pipe, key, "crewq_tool_seconds", max(finished - started, 0.0), tool=tool)


def _tool_skipped(pipe, key, agent, data):
    _count(pipe, key, "crewq_tool_calls_total", tool=data.get("name") or "?", status="skipped")


def _decision(pipe, key, agent, data):
    action, policy = data.get("action") or "?", data.get("policy") or "?"
    _count(pipe, key, "crewq_decisions_total", action=action, policy=policy)
    if action == "restart":
        _count(pipe, key, "crewq_restarts_total", policy=policy)


def _requeued(pipe, key, agent, data):
    _count(pipe, key, "crewq_requeues_total")


def _handed_over(pipe, key, agent, data):
    _count(pipe, key, "crewq_handovers_total", agent=agent, fallback=data.get("fallback") or "?")


# Event types whose handler counts each event exactly once in a counter of its own: the counter (and the
# labels its samples must have) that `crewq_events_total{type}` is summed from at read time.
EVENT_COUNTERS: dict[str, tuple[str, dict[str, Any]]] = {
    "run_submitted": ("crewq_runs_submitted_total", {}), "run_finished": ("crewq_runs_finished_total", {}),
    "run_resumed": ("crewq_runs_resumed_total", {}), "wave_emitted": ("crewq_waves_emitted_total", {}),
    "turn_started": ("crewq_turns_total", {}),
    "agent_succeeded": ("crewq_agents_finished_total", {"status": "succeeded"}),
    "agent_failed": ("crewq_agents_finished_total", {"status": "failed"}),
    "agent_skipped": ("crewq_agents_finished_total", {"status": "skipped"}),
    "llm_call": ("crewq_llm_calls_total", {}), "llm_retry": ("crewq_llm_retries_total", {}),
    "tool_result": ("crewq_tool_calls_total", {"status": ("ok", "error")}),
    "tool_skipped": ("crewq_tool_calls_total", {"status": "skipped"}),
    "decision": ("crewq_decisions_total", {}), "requeued": ("crewq_requeues_total", {}),
    "handed_over": ("crewq_handovers_total", {}),
}

_HANDLERS = {
    "run_submitted": _run_submitted, "run_finished": _run_finished, "run_resumed": _run_resumed,
    "wave_emitted": _wave_emitted, "turn_started": _turn_started, "agent_succeeded": _agent_succeeded,
    "agent_failed": _agent_failed, "agent_skipped": _agent_skipped, "llm_call": _llm_call,
    "llm_retry": _llm_retry, "llm_throttled": _llm_throttled, "tool_result": _tool_result, "tool_skipped": _tool_skipped,
    "decision": _decision, "requeued": _requeued, "handed_over": _handed_over,
}
