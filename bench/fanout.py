"""Benchmark: one turn asking for 8 tool calls of 300 ms, crewq beside bare Celery's same canvas.

crewq: one agent whose first scripted reply (200 ms) asks for 8 calls of `pause` (a Python tool that
sleeps 300 ms); its second turn answers. Bare Celery (`bench/floor.py`): a turn that replaces itself
with a chord of 8 tool tasks sleeping 300 ms and the next turn. Both on one in-process worker
(threads, the bench's `--concurrency`), interleaved. From crewq's event timestamps and the times the
bare tasks write:

    spread       the first tool call's start -> the last one's (they should start together)
    reply -> next LLM call   crewq: llm_call of turn 0 -> turn 1's request (its llm_call minus its
                             seconds); bare: turn 0 returns -> turn 1 starts

Target: the 8 calls start together, the next LLM call <= 360 ms after the reply.

    .venv/bin/python bench/fanout.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import floor  # noqa: E402

from crewq.config.loader import load_crew_text  # noqa: E402
from crewq.config.policy import Policy  # noqa: E402
from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.embedded import in_process_worker  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client, submit_loaded  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

TOOLS, TOOL_SECONDS, LATENCY = 8, 0.3, 0.2


def pause(seconds: float = TOOL_SECONDS, n: int = 0) -> str:
    """Sleep `seconds`, then say so (the bench's tool: a call that waits, like most tools). `n` tells
    the calls apart: identical calls past `max_duplicate_tool_calls` would be skipped."""
    time.sleep(seconds)
    return f"paused {n}"


def crew_yaml() -> str:
    calls = ", ".join(f"{{name: pause, arguments: {{seconds: {TOOL_SECONDS}, n: {i}}}}}" for i in range(TOOLS))
    return "\n".join([
        "runtime: {name: fanout, llm_provider: scripted}",
        "tools: [{name: pause, python: 'fanout:pause'}]",
        "agents:",
        "  - id: a",
        "    tools: [pause]",
        "    script:",
        f"      - {{latency: {LATENCY}, tool_calls: [{calls}]}}",
        f"      - {{latency: {LATENCY}, text: done}}",
    ]) + "\n"


def crewq_once(client: Client, folder: str) -> tuple[float, float]:
    run_id = submit_loaded(client.app, load_crew_text(crew_yaml(), str(Path(folder) / "fanout.yaml")))
    client.wait(run_id, timeout=60)
    events = client.ledger.events(run_id, count=None)
    calls = [e for e in events if e["type"] == "llm_call"]
    if client.status(run_id).status != "succeeded" or len(calls) != 2:
        raise SystemExit(f"run {run_id} did not succeed with 2 LLM calls: {[e['type'] for e in events]}")
    starts = [e["ts"] for e in events if e["type"] == "tool_call"]
    next_request = calls[1]["ts"] - calls[1]["seconds"]
    return max(starts) - min(starts), next_request - calls[0]["ts"]


def bare_once(app) -> tuple[float, float]:
    run, _ = floor.run_once(app, 1)
    t = floor.stamps(app, run)
    starts = [t[f"tool:0:0:{i}"] for i in range(TOOLS)]
    return max(starts) - min(starts), t["turn:0:0:1"] - t["reply:0:0:0"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    crewq, bare = [], []
    with LocalRedis() as server, tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(redis_url=server.url, policy=Policy.trusted()))  # as bench/waves.py
        floor.install(app, 1, 1, latency=LATENCY, tools=TOOLS, tool_latency=TOOL_SECONDS)
        with in_process_worker(app, concurrency=args.concurrency):
            client = Client(app)
            crewq_once(client, folder), bare_once(app)  # warm-up
            for _ in range(args.repeat):  # interleaved: both see the same machine
                crewq.append(crewq_once(client, folder))
                bare.append(bare_once(app))
        app.close()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); {TOOLS} tools of {TOOL_SECONDS * 1000:.0f} ms, "
          f"concurrency {args.concurrency}, median of {args.repeat}")
    print(f"{'':<26}{'crewq ms':>10}{'bare ms':>10}")
    for i, name in enumerate(("tool starts' spread", "reply -> next LLM call")):
        c, b = (statistics.median(x[i] for x in runs) * 1000 for runs in (crewq, bare))
        print(f"{name:<26}{c:>10.1f}{b:>10.1f}")
    spread = statistics.median(x[0] for x in crewq) * 1000
    gap = statistics.median(x[1] for x in crewq) * 1000
    print(f"8 tools of 300 ms: they start within {spread:.0f} ms; the next LLM call {gap:.0f} ms after the reply "
          f"(target <= 360)")


if __name__ == "__main__":
    main()
