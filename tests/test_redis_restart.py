"""Redis restarts under a fleet of real processes: workers and the supervisor stay up, runs finish,
and nothing is recorded twice. Redis keeps an append-only file (fsync every second)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import redis

from crewq.config.loader import load_crew
from crewq.config.settings import Settings
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.app import create_app

from conftest import FAST, WorkerProcesses, start_supervisor
from helpers import write_crew

CREW = """
runtime: {{llm_provider: scripted}}
task: {{input: "crew {i}"}}
agents:
  - id: reader
    tools: [list_files]
    script:
      - {{latency: 0.3s, tool_calls: [{{name: list_files}}, {{name: list_files, arguments: {{recursive: true}}}}]}}
      - {{latency: 0.5s, text: "read {i}"}}
  - id: writer
    depends_on: [reader]
    tools: [list_files]
    script:
      - {{latency: 0.3s, tool_calls: [{{name: list_files}}]}}
      - {{latency: 0.5s, text: "wrote {i}"}}
"""


def progress(ledger, run_ids) -> int:
    """Events recorded so far over the runs (Redis may be just back: a failed read counts as none)."""
    try:
        return sum(ledger.redis.xlen(ledger.keys.events(r)) for r in run_ids)
    except redis.ConnectionError:
        return 0


def wait_for_progress(ledger, run_ids, beyond: int, timeout: float = 60) -> int:
    """Block on the first run's event stream until the fleet has recorded more than `beyond` events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = progress(ledger, run_ids)
        if seen > beyond:
            return seen
        try:
            ledger.redis.xread({ledger.keys.events(r): "$" for r in run_ids}, block=500)
        except redis.ConnectionError:
            time.sleep(0.1)  # Redis is coming back; nothing to block on yet
    raise AssertionError(f"no progress beyond {beyond} events in {timeout}s")


@pytest.mark.parametrize("crews,signals", [
    (4, [signal.SIGTERM]),
    (4, [signal.SIGKILL]),
    (10, [signal.SIGTERM, signal.SIGKILL]),  # the bounded chaos test of issue 11
], ids=["sigterm", "sigkill", "chaos-10-crews-twice"])
def test_the_fleet_carries_on_through_redis_restarts(aof_redis, tmp_path, crews, signals):
    app = create_app(Settings(redis_url=aof_redis.url, **FAST))
    ledger = app.ledger
    workers = WorkerProcesses(app, aof_redis.url, tmp_path)
    supervisor = None
    try:
        nodes = [workers.start(f"w{i}", concurrency=8) for i in range(2)]
        supervisor = start_supervisor(aof_redis.url, "sup", tmp_path)
        run_ids = [submit_loaded(app, load_crew(write_crew(tmp_path, CREW.format(i=i), f"crew{i}.yaml")))
                   for i in range(crews)]
        seen = 0
        for sig in signals:
            seen = wait_for_progress(ledger, run_ids, beyond=seen + crews)  # mid-run, every time
            aof_redis.restart(sig)

        client = Client(app)
        statuses = {}
        for run_id in run_ids:
            for _ in client.events(run_id, follow=True, timeout=90):
                pass
            statuses[run_id] = client.status(run_id)
        alive = {name: proc.poll() is None for name, proc in [*workers.procs.items(), ("supervisor", supervisor)]}
        logs = {node: workers.log(node)[-2000:] for node in nodes if not alive[node]}
        assert all(alive.values()), (alive, logs)

        for i, run_id in enumerate(run_ids):
            status = statuses[run_id]
            assert status.status == "succeeded", (status, (tmp_path / "sup.log").read_text()[-3000:])
            assert status.output == f"wrote {i}"
            events = ledger.events(run_id, count=None)
            outputs = Counter(e["agent"] for e in events if e["type"] == "agent_succeeded")
            results = Counter((e["agent"], e["turn"], e["index"]) for e in events if e["type"] == "tool_result")
            assert outputs == {"reader": 1, "writer": 1}, events
            assert results == {("reader", 0, 0): 1, ("reader", 0, 1): 1, ("writer", 0, 0): 1}, events
        for node in nodes:
            assert "Unrecoverable error" not in workers.log(node)
    finally:
        workers.stop_all()
        if supervisor is not None and supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGTERM)
            supervisor.wait(15)
        app.close()
