"""Prometheus metrics of crewq's own, read from the ledger's `{prefix}:metrics` hash on each scrape.

    server = serve_metrics(ledger, port=9808)     # GET http://host:9808/metrics
    server.shutdown()

The counters are written by every worker (`crewq.workers.ledger.metrics.record`, inside each event's
pipeline), so one scrape of one supervisor sees the whole fleet, and nothing is lost when a process
restarts. Besides the counters, gauges are read live: runs not yet ended, workers whose heartbeat is
fresh, each fleet limit's current use and maximum, and the agent breakers open now.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from redis.exceptions import RedisError

from crewq.workers.agent_breaker import open_breakers
from crewq.workers.ledger import Ledger
from crewq.workers.ledger.metrics import EVENT_COUNTERS, METRICS, parse_field
from crewq.workers.llm.limits import fleet_limits

log = logging.getLogger(__name__)


class LedgerCollector:
    """A custom collector: one HGETALL (and two small reads) per scrape, no state in this process."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def describe(self) -> list[Metric]:
        return []  # registering must not touch Redis; the families are known only at scrape time

    def collect(self) -> Iterator[Metric]:
        try:
            raw, active, workers = self._read()
        except (RedisError, OSError) as exc:  # Redis away: say so, rather than fail the whole scrape
            log.warning("metrics: cannot read the ledger: %s", exc)
            yield GaugeMetricFamily("crewq_ledger_up", "1 if the ledger (Redis) answered this scrape", value=0)
            return
        yield GaugeMetricFamily("crewq_ledger_up", "1 if the ledger (Redis) answered this scrape", value=1)
        yield GaugeMetricFamily("crewq_runs_active", "Runs submitted and not yet ended", value=active)
        yield GaugeMetricFamily("crewq_workers_alive", "Workers whose heartbeat is fresh", value=workers)
        yield from families(raw)
        yield from self._limits()
        yield self._breakers()

    def _breakers(self) -> Metric:
        """Agent breakers open now, fleet-wide (one SCAN): 1 each, labelled by crew and agent."""
        family = GaugeMetricFamily("crewq_agent_breaker_open", "1 for each agent whose breaker is open now "
                                   "(its turns go straight to its fallback)", labels=("crew", "digest", "agent"))
        try:
            for found in open_breakers(self.ledger.redis, self.ledger.keys):
                family.add_metric([found.crew, found.digest, found.agent], 1)
        except (RedisError, OSError) as exc:
            log.warning("metrics: cannot read the agent breakers: %s", exc)
        return family

    def _limits(self) -> Iterator[Metric]:
        """Each fleet limit and its current use (calls or tokens in the window, slots held), read live."""
        in_use = GaugeMetricFamily("crewq_limit_in_use", "Current use of a fleet limit: calls (rpm) or tokens (tpm) "
                                   "in its window, calls in flight (concurrency)", labels=("scope", "limit"))
        maximum = GaugeMetricFamily("crewq_limit_max", "A fleet limit's maximum", labels=("scope", "limit"))
        try:
            rows = fleet_limits(self.ledger.redis, self.ledger.keys.prefix).usage()
        except (RedisError, OSError) as exc:
            log.warning("metrics: cannot read the fleet limits: %s", exc)
            rows = []
        for row in rows:
            for kind in ("rpm", "tpm", "concurrency"):
                if kind in row:
                    in_use.add_metric([row["scope"], kind], row[kind][0])
                    maximum.add_metric([row["scope"], kind], row[kind][1])
        yield in_use
        yield maximum

    def _read(self) -> tuple[dict[str, str], int, int]:
        redis, keys = self.ledger.redis, self.ledger.keys
        pipe = redis.pipeline(transaction=False)
        pipe.hgetall(keys.metrics)
        pipe.scard(keys.active)
        raw, active = pipe.execute()
        workers = sum(1 for _ in redis.scan_iter(match=keys.heartbeat("*"), count=500))
        return raw, int(active), workers


def families(raw: dict[str, str]) -> Iterator[Metric]:
    """The metric families of a metrics hash, every known metric present (counters at 0 if unseen)."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for key, value in raw.items():
        name, labels = parse_field(key)
        try:
            samples[name].append((labels, float(value)))
        except ValueError:
            continue
    samples["crewq_events_total"] += list(_derived_event_counts(samples))
    for metric in METRICS.values():
        if metric.kind == "counter":
            yield _counter(metric, samples.get(metric.name, []))
        else:
            yield _histogram(metric, samples)


def _derived_event_counts(samples) -> Iterator[tuple[dict[str, str], float]]:
    """`crewq_events_total` of the event types that their own counter counts (written once, not twice)."""
    for type_, (name, wanted) in EVENT_COUNTERS.items():
        total = sum(value for labels, value in samples.get(name, [])
                    if all(labels.get(k) in (v if isinstance(v, tuple) else (v,)) for k, v in wanted.items()))
        if total:
            yield {"type": type_}, total


def _counter(metric, samples) -> CounterMetricFamily:
    family = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
    if not samples and not metric.labels:
        family.add_metric([], 0.0)
    for labels, value in sorted(samples, key=lambda s: sorted(s[0].items())):
        family.add_metric([labels.get(name, "") for name in metric.labels], value)
    return family


def _histogram(metric, samples) -> HistogramMetricFamily:
    family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    series: dict[tuple[str, ...], dict] = defaultdict(lambda: {"sum": 0.0, "buckets": {}})
    for labels, value in samples.get(metric.name + "_sum", []):
        series[_label_values(metric, labels)]["sum"] = value
    for labels, value in samples.get(metric.name + "_bin", []):
        series[_label_values(metric, labels)]["buckets"][float(labels.get("le", "inf"))] = value
    for label_values, s in sorted(series.items()):
        # The workers count each observation in its own bin only (one write); Prometheus wants them cumulative.
        buckets, running = [], 0.0
        for bound in metric.buckets:
            running += s["buckets"].get(float(bound), 0.0)
            buckets.append((_le(bound), running))
        buckets.append(("+Inf", running + s["buckets"].get(float("inf"), 0.0)))
        family.add_metric(list(label_values), buckets, s["sum"])
    return family


def _label_values(metric, labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in metric.labels)


def _le(bound: float) -> str:
    return repr(float(bound))


def registry_for(ledger: Ledger) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger))
    return registry


def serve_metrics(ledger: Ledger, port: int, addr: str = "0.0.0.0"):
    """Serve /metrics on addr:port (0: a free port) from a thread; returns the server (`.server_port`,
    `.shutdown()`). Only crewq's metrics: this process's own are not mixed in."""
    server, _thread = start_http_server(port, addr=addr, registry=registry_for(ledger))
    log.info("metrics on http://%s:%d/metrics", addr, server.server_port)
    return server
