"""Benchmark: submissions per second from one client, beside bare Celery's `send_task` in the same run.

A one-agent scripted crew (YAML text) is submitted with `Client.submit` (parse, validate, store by
value, emit its first wave) in blocks of `--count`, interleaved with blocks of bare `send_task`
calls of a no-op through the same app and Redis. No worker runs: the messages wait in their
queues, so only the client's side is measured. Target: >= 200 runs/s.

    .venv/bin/python bench/submit.py [--count 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

CREW = """
runtime: {name: tiny, llm_provider: scripted}
task: {input: "say {word}"}
agents:
  - id: solo
    tools: [list_files]
    script: [{text: done}]
"""


def rate(action, count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with LocalRedis() as server:
        app = create_app(Settings(redis_url=server.url))
        client = Client(app)

        def crewq_submit() -> None:
            client.submit(CREW, inputs={"word": "hi"})

        def bare_send() -> None:
            app.send_task("bench.noop", args=("r", 0), queue="bench.noop")

        crewq_submit(), bare_send()  # warm-up: imports, connections, scripts
        crewq, bare = [], []
        for _ in range(args.repeat):  # interleaved: both see the same machine
            crewq.append(rate(crewq_submit, args.count))
            bare.append(rate(bare_send, args.count))
        app.close()
    c, b = statistics.median(crewq), statistics.median(bare)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); blocks of {args.count}, median of {args.repeat}")
    print(f"bare Celery send_task:   {b:8.1f} /s  (min {min(bare):.1f}, max {max(bare):.1f})")
    print(f"crewq Client.submit:     {c:8.1f} /s  (min {min(crewq):.1f}, max {max(crewq):.1f})")
    print(f"submissions/s from one client: {c:.1f} ({c / b:.3f} of bare send_task; target >= 200/s)")


if __name__ == "__main__":
    main()
