"""Fleet-wide counters, kept in Redis as events are written; the supervisor serves them to Prometheus.

`record` runs inside the pipeline of every `Ledger.event`, so counting costs no extra round trip.
    {p}:metrics   hash   "<counter>|<label>=<value>,..." → number
"""

from __future__ import annotations

from typing import Any

from .keys import Keys


def metrics_key(keys: Keys) -> str:
    return f"{keys.prefix}:metrics"


def field(name: str, **labels: Any) -> str:
    return name + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def record(pipe, keys: Keys, type_: str, agent: str | None, data: dict[str, Any]) -> None:
    pipe.hincrby(metrics_key(keys), field("crewq_events_total", type=type_), 1)
