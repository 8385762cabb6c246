"""Benchmark: the latency of each hop of a run, crewq beside bare Celery's same hop in the same run.

The waves crew (bench/waves.py) and `bench/floor.py`'s bare Celery canvas of the same shape run
interleaved on one in-process worker. crewq's hops come from the run's event timestamps, bare
Celery's from the times its no-op tasks write:

    wave -> turn      crewq: wave_emitted -> turn_started (turn 0)      bare: advance starts -> turn 0 starts
    turn -> tool      crewq: llm_call (reply recorded) -> tool_call      bare: turn 0 returns -> tool starts
    tool -> turn      crewq: tool_result -> turn_started (turn 1)        bare: tool starts -> turn 1 starts
    turn -> next wave crewq: last agent_succeeded -> first turn_started  bare: last turn 1 returns -> first turn 0
                      of the next wave (through advance)                 of the next wave (through advance)

Target: each crewq hop <= 2x the bare one.

    .venv/bin/python bench/hops.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import floor  # noqa: E402
from waves import LATENCY, WAVES, WIDTH, crew_yaml  # noqa: E402

from crewq.config.loader import load_crew_text  # noqa: E402
from crewq.config.policy import Policy  # noqa: E402
from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.embedded import in_process_worker  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client, submit_loaded  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

HOPS = ("wave -> turn", "turn -> tool", "tool -> turn", "turn -> next wave")


def crewq_hops(client: Client, folder: str) -> dict[str, list[float]]:
    run_id = submit_loaded(client.app, load_crew_text(crew_yaml(), str(Path(folder) / "bench.yaml")))
    client.wait(run_id, timeout=120)
    events = client.ledger.events(run_id, count=None)
    hops: dict[str, list[float]] = defaultdict(list)
    wave_of = {f"w{w}a{i}": w for w in range(WAVES) for i in range(WIDTH)}
    emitted, started, replied, tool_call, tool_result, succeeded = {}, {}, {}, {}, {}, {}
    for e in events:
        kind, agent, ts = e["type"], e["agent"], e["ts"]
        if kind == "wave_emitted":
            emitted[e["wave"]] = ts
        elif kind == "turn_started":
            started[(agent, e["turn"])] = ts
        elif kind == "llm_call" and e["turn"] == 0:
            replied[agent] = ts
        elif kind == "tool_call":
            tool_call[agent] = ts
        elif kind == "tool_result":
            tool_result[agent] = ts
        elif kind == "agent_succeeded":
            succeeded[agent] = ts
    for agent, wave in wave_of.items():
        hops["wave -> turn"].append(started[(agent, 0)] - emitted[wave])
        hops["turn -> tool"].append(tool_call[agent] - replied[agent])
        hops["tool -> turn"].append(started[(agent, 1)] - tool_result[agent])
    for wave in range(WAVES - 1):
        last = max(succeeded[a] for a, w in wave_of.items() if w == wave)
        first = min(started[(a, 0)] for a, w in wave_of.items() if w == wave + 1)
        hops["turn -> next wave"].append(first - last)
    return hops


def bare_hops(app) -> dict[str, list[float]]:
    run, _ = floor.run_once(app, WIDTH)
    t = floor.stamps(app, run)
    hops: dict[str, list[float]] = defaultdict(list)
    for wave in range(WAVES):
        for a in range(WIDTH):
            if wave:
                hops["wave -> turn"].append(t[f"turn:{wave}:{a}:0"] - t[f"advance:{wave - 1}"])
            hops["turn -> tool"].append(t[f"tool:{wave}:{a}:0"] - t[f"reply:{wave}:{a}:0"])
            hops["tool -> turn"].append(t[f"turn:{wave}:{a}:1"] - t[f"tool:{wave}:{a}:0"])
        if wave + 1 < WAVES:
            last = max(t[f"reply:{wave}:{a}:1"] for a in range(WIDTH))
            first = min(t[f"turn:{wave + 1}:{a}:0"] for a in range(WIDTH))
            hops["turn -> next wave"].append(first - last)
    return hops


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    crewq: dict[str, list[float]] = defaultdict(list)
    bare: dict[str, list[float]] = defaultdict(list)
    with LocalRedis() as server, tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(redis_url=server.url, policy=Policy.trusted()))  # as bench/waves.py
        floor.install(app, WAVES, WIDTH, latency=LATENCY)
        with in_process_worker(app, concurrency=16):
            client = Client(app)
            crewq_hops(client, folder), bare_hops(app)  # warm-up
            for _ in range(args.repeat):  # interleaved: both see the same machine
                for name, values in crewq_hops(client, folder).items():
                    crewq[name] += values
                for name, values in bare_hops(app).items():
                    bare[name] += values
        app.close()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); {args.repeat} runs each, medians over every hop of them")
    print(f"{'hop':<20}{'crewq ms':>10}{'bare ms':>10}{'ratio':>8}")
    worst = 0.0
    for name in HOPS:
        c, b = statistics.median(crewq[name]) * 1000, statistics.median(bare[name]) * 1000
        worst = max(worst, c / b)
        print(f"{name:<20}{c:>10.1f}{b:>10.1f}{c / b:>8.2f}")
    print(f"worst hop: {worst:.2f}x bare Celery's same hop (target <= 2)")


if __name__ == "__main__":
    main()
