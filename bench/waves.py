"""Benchmark: scheduling overhead of waves, turns and tool chords.

4 waves x 2 agents; every agent makes 2 scripted LLM calls of 200 ms (the first asks for a tool).
The critical path is the sum over waves of the slowest agent's LLM time (4 x 2 x 0.2 s = 1.6 s);
the wall time runs from submission to the run's end. Target: wall <= 1.15 x critical path.

    .venv/bin/python bench/waves.py [--repeat 5] [--workers thread|process]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crewq.config.loader import load_crew_text  # noqa: E402
from crewq.config.policy import Policy  # noqa: E402
from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.embedded import in_process_worker  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client, submit_loaded  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

LATENCY, WAVES, WIDTH, TURNS = 0.2, 4, 2, 2


def crew_yaml() -> str:
    lines = ["runtime: {name: bench, llm_provider: scripted}", "agents:"]
    for wave in range(WAVES):
        for i in range(WIDTH):
            deps = [f"w{wave - 1}a{j}" for j in range(WIDTH)] if wave else []
            lines += [f"  - id: w{wave}a{i}", f"    depends_on: {deps}", "    tools: [list_files]", "    script:",
                      f"      - {{latency: {LATENCY}, tool_calls: [{{name: list_files}}]}}",
                      f"      - {{latency: {LATENCY}, text: done}}"]
    return "\n".join(lines) + "\n"


def one_run(client: Client, folder: str) -> tuple[float, float]:
    loaded = load_crew_text(crew_yaml(), str(Path(folder) / "bench.yaml"))
    began = time.perf_counter()
    run_id = submit_loaded(client.app, loaded)
    client.wait(run_id, timeout=120)
    wall = time.perf_counter() - began
    status = client.status(run_id)
    measured = 0.0
    for wave in range(WAVES):
        ids = [f"w{wave}a{i}" for i in range(WIDTH)]
        measured += max(status.agents[a].finished_at - status.agents[a].started_at for a in ids)
    return wall, measured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    critical = WAVES * TURNS * LATENCY
    with LocalRedis() as server, tempfile.TemporaryDirectory() as folder:
        # Its own crew on its own machine: the embedded default's trust (list_files in the temp folder).
        app = create_app(Settings(redis_url=server.url, policy=Policy.trusted()))
        with in_process_worker(app, concurrency=16):
            client = Client(app)
            one_run(client, folder)  # warm-up: imports, connections
            runs = [one_run(client, folder) for _ in range(args.repeat)]
        app.close()
    walls = [w for w, _ in runs]
    wall = statistics.median(walls)
    print(f"crew: {WAVES} waves x {WIDTH} agents, {TURNS} turns each ({LATENCY * 1000:.0f} ms scripted latency), "
          f"1 tool call per agent")
    print(f"critical path (nominal):       {critical:.3f} s")
    print(f"critical path (measured, agents' own time): {statistics.median(m for _, m in runs):.3f} s")
    print(f"wall time, median of {args.repeat}:     {wall:.3f} s  (min {min(walls):.3f}, max {max(walls):.3f})")
    print(f"wall / critical path:          {wall / critical:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
