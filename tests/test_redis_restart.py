"""Redis restarts under a fleet of real processes: workers and the supervisor stay up, runs finish,
and nothing is recorded twice. Redis keeps an append-only file (fsync every second)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis

from crewq.config.loader import load_crew
from crewq.config.settings import Settings
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.app import create_app

from conftest import FAST, FAST_ENV, ROOT, WorkerProcesses, start_supervisor
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


TICKER = "runtime: {llm_provider: scripted}\nschedule: {every: 1s}\nagents:\n  - {id: tick, script: [{text: tick}]}\n"


def next_firing(client: redis.Redis, queue: str, timeout: float = 30) -> str:
    """Block until beat's next firing puts its first turn on the (unconsumed) turns queue; its run id."""
    found = client.blpop([queue], timeout=timeout)
    assert found is not None, f"beat did not fire within {timeout}s"
    return json.loads(found[1])["headers"]["argsrepr"].split("'")[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_beat_carries_on_through_a_redis_restart(aof_redis, tmp_path, sig):
    crews = tmp_path / "crews"
    crews.mkdir()
    write_crew(crews, TICKER, "ticker.yaml")
    app = create_app(Settings(redis_url=aof_redis.url, **FAST))
    turns = app.settings.queues.turns
    log = open(tmp_path / "beat.log", "ab")
    beat = subprocess.Popen([sys.executable, "-m", "crewq", "beat", "--crews-dir", str(crews), "--max-interval", "1"],
                            env={**os.environ, "CREWQ_REDIS_URL": aof_redis.url, **FAST_ENV}, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    client = redis.Redis.from_url(aof_redis.url)
    try:
        before = next_firing(client, turns)  # beat fires, with no worker: its turns wait in the queue
        aof_redis.restart(sig)
        client.delete(turns)  # what was queued before the restart: the next message is a new firing's
        restarted = time.time()
        after = next_firing(client, turns)
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()[-3000:]
        assert after != before and float(app.ledger.run(after)["submitted_at"]) >= restarted
        assert "Traceback" not in (tmp_path / "beat.log").read_text()
    finally:
        client.close()
        if beat.poll() is None:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(15)
        app.close()
