"""Benchmark: what one worker process holds, and tiny runs/s beside bare no-op tasks/s.

    waits     `--runs` one-agent crews (400) whose one LLM call waits `--wait` s (2 s, the scripted
              provider's latency: a thread blocked on I/O, as an HTTP call is) are submitted with no
              worker up; then one in-process worker (threads pool, each `--concurrency`) starts, and
              the bench times from its start to the last run's end. Beside it, the same count of
              bare Celery tasks sleeping as long, through the same worker (the floor).
    runs/s    one-agent crews with no latency (submit, turn, advance: 3 tasks) through one worker,
              beside bare Celery no-op tasks through the same worker: both queued first, then drained.

Targets: 400 waits of 2 s in <= 3 s; tiny runs/s >= 0.15 x bare no-op tasks/s.

    .venv/bin/python bench/concurrency.py [--concurrency 64 256 512] [--runs 400] [--tiny 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.embedded import in_process_worker  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

NOOP, SLEEP = "bench.noop", "bench.sleep"


def crew(wait: float) -> str:
    step = f"{{latency: {wait}, text: done}}" if wait else "{text: done}"
    return f"runtime: {{name: one, llm_provider: scripted}}\nagents:\n  - id: solo\n    script: [{step}]\n"


def drain(app, concurrency: int, done) -> float:
    """Start a worker and time it until `done()`."""
    with in_process_worker(app, concurrency=concurrency):
        began = time.perf_counter()
        while not done():
            time.sleep(0.01)
        return time.perf_counter() - began


def crewq_runs(app, client: Client, count: int, wait: float, concurrency: int) -> float:
    ids = [client.submit(crew(wait)) for _ in range(count)]
    ledger = app.ledger

    def finished() -> bool:
        return not ledger.redis.smembers(ledger.keys.active)
    seconds = drain(app, concurrency, finished)
    bad = [i for i in ids if ledger.run_status(i) != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not succeed, e.g. {bad[0]}: {ledger.run_status(bad[0])}")
    return seconds


def bare_tasks(app, count: int, concurrency: int, wait: float = 0.0) -> float:
    """`count` bare tasks (no-ops, or sleeping `wait` s) through one worker: their floor."""
    r = app.ledger.redis
    r.delete("bench:noop:done")
    for _ in range(count):
        if wait:
            app.send_task(SLEEP, args=(wait,), queue=app.settings.queues.turns)
        else:
            app.send_task(NOOP, queue=app.settings.queues.control)
    return drain(app, concurrency, lambda: int(r.get("bench:noop:done") or 0) >= count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--wait", type=float, default=2.0)
    parser.add_argument("--tiny", type=int, default=200)
    args = parser.parse_args()
    lines = []
    with LocalRedis() as server:
        app = create_app(Settings(redis_url=server.url))

        @app.task(name=NOOP)
        def noop():
            app.ledger.redis.incr("bench:noop:done")

        @app.task(name=SLEEP)
        def sleep(seconds: float):
            time.sleep(seconds)
            app.ledger.redis.incr("bench:noop:done")

        client = Client(app)
        crewq_runs(app, client, 2, 0, 4)  # warm-up: imports, connections, scripts
        for concurrency in args.concurrency:
            seconds = crewq_runs(app, client, args.runs, args.wait, concurrency)
            floor = bare_tasks(app, args.runs, concurrency, args.wait)
            lines.append(f"-c {concurrency:>4}: {args.runs} runs of one {args.wait:g} s LLM call: bare Celery tasks "
                         f"sleeping {args.wait:g} s {floor:.2f} s, crewq: {seconds:.2f} s")
        concurrency = args.concurrency[0]
        tiny = args.tiny / crewq_runs(app, client, args.tiny, 0, concurrency)
        bare = args.tiny / bare_tasks(app, args.tiny, concurrency)
        app.close()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); one in-process worker, threads pool")
    print("\n".join(lines))
    print(f"-c {concurrency:>4}: tiny runs {tiny:.1f}/s, bare no-op tasks {bare:.1f}/s")
    print(f"tiny runs/s: {tiny / bare:.3f} of bare no-op tasks/s (target >= 0.15); "
          f"{args.runs} waits of {args.wait:g} s: {lines[-1].rsplit(': ', 1)[1]} at -c {args.concurrency[-1]} "
          f"(target <= 3 s)")


if __name__ == "__main__":
    main()
