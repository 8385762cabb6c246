"""Benchmark: from a worker's SIGKILL to its turn running again on another worker.

Two `crewq worker` processes and an in-process supervisor share a private Redis, with the default
clocks (heartbeat every 2 s, dead after 6 s of silence, sweep every 1 s). A one-agent crew's turn
takes 60 s; the worker that started it is SIGKILLed, and the time until the turn starts again on
the other worker is measured from the ledger's events. Celery alone would wait for Redis's
visibility timeout (1 h by default). Target: <= 10 s.

    .venv/bin/python bench/requeue.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crewq.config.loader import load_crew_text  # noqa: E402
from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client, submit_loaded  # noqa: E402
from crewq.scheduler.supervisor import SupervisorThread  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402
from crewq.workers.ledger.events import TurnStarted  # noqa: E402

CREW = """
runtime: {name: requeue-bench, llm_provider: scripted}
agents:
  - id: slow
    script: [{latency: 60s, text: done}]
"""


def start_worker(name: str, url: str, logdir: str) -> subprocess.Popen:
    log = open(os.path.join(logdir, f"{name}.log"), "ab")
    return subprocess.Popen([sys.executable, "-m", "crewq", "worker", "-n", name, "-c", "4", "-l", "WARNING"],
                            env={**os.environ, "CREWQ_REDIS_URL": url}, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(app, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(destination=names, timeout=0.5)) == len(names):
            return
    raise SystemExit(f"workers {names} not ready after {timeout:g}s")


def one_kill(app, workers: dict[str, subprocess.Popen], url: str, logdir: str, folder: str) -> float:
    client = Client(app)
    run_id = submit_loaded(app, load_crew_text(CREW, str(Path(folder) / "crew.yaml")))
    events = client.events(run_id, follow=True, timeout=60)
    victim = next(e.host for e in events if isinstance(e, TurnStarted))
    killed_at = time.time()
    os.killpg(workers[victim].pid, signal.SIGKILL)
    workers[victim].wait()
    again = next(e for e in events if isinstance(e, TurnStarted))
    assert again.host != victim, again
    client.cancel(run_id)
    workers[victim] = start_worker(victim, url, logdir)  # back to two workers for the next round
    wait_ready(app, list(workers))
    return again.ts - killed_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    host = socket.gethostname()
    with LocalRedis() as server, tempfile.TemporaryDirectory() as folder:
        app = create_app(settings.model_copy(update={"redis_url": server.url}))
        names = [f"bench{i}@{host}" for i in (1, 2)]
        workers = {name: start_worker(name, server.url, folder) for name in names}
        try:
            wait_ready(app, names)
            with SupervisorThread(app, name="bench"):
                times = [one_kill(app, workers, server.url, folder, folder) for _ in range(args.repeat)]
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            app.close()
    print(f"clocks: heartbeat every {settings.heartbeat_interval:g} s, dead after {settings.heartbeat_ttl:g} s, "
          f"sweep every {settings.sweep_interval:g} s; Redis visibility timeout {settings.visibility_timeout:g} s")
    print("SIGKILL -> turn running on the other worker: " + ", ".join(f"{t:.2f} s" for t in times))
    print(f"median {statistics.median(times):.2f} s, max {max(times):.2f} s  (target <= 10 s)")


if __name__ == "__main__":
    main()
