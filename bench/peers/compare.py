"""Benchmark: crewq beside LangGraph on the same DAG and the same local latency server.

The DAG (dag.py): 4 waves x 2 agents, full fan-in, each agent an LLM call asking for `list_files`,
the tool call, a second LLM call. Every LLM call goes to one local OpenAI-compatible server in a
process of its own (latency_server.py: 200 ms a call, keep-alive), so the critical path is 1.6 s.
Each round, interleaved:

- crewq on a fleet: `Client.submit` + `wait` against a `crewq worker` process (threads, -c 16) on a
  private Redis; wall time from submission to the run's end;
- LangGraph: `graph.invoke` of the same DAG (langgraph_dag.py), one ChatOpenAI per process;
- `crewq run` of the crew file: the whole command, embedded (its own Redis and in-process worker);
- `crewq run` of a one-agent crew on the same provider and tool whose model answers at once (the
  server's `instant`): the start-up and stop a `crewq run` adds, the provider's and tool's imports
  and first connection included.

Targets: fleet <= 1.10x the critical path; `crewq run` <= 1.10x the critical path + that start-up.
Needs the `bench` extra (`pip install -e '.[bench]'`).

    .venv/bin/python bench/peers/compare.py [--repeat 5] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from dag import LLM_CALLS, WAVES, WIDTH, crew_yaml, critical_path  # noqa: E402

from crewq.config.loader import load_crew_text  # noqa: E402
from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import Client, submit_loaded  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

CREWQ = str(Path(sys.executable).with_name("crewq"))


def start_latency_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "latency_server.py"), "--latency", str(latency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_worker(redis_url: str, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([CREWQ, "worker", "-c", "16", "-l", "WARNING", "-n", "peers@bench"],
                            env={**env, "CREWQ_REDIS_URL": redis_url}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    return proc


def fleet_run(client: Client, text: str, path: str) -> float:
    loaded = load_crew_text(text, path)
    began = time.perf_counter()
    run_id = submit_loaded(client.app, loaded)
    state = client.wait(run_id, timeout=120)
    took = time.perf_counter() - began
    if state.status != "succeeded" or state.usage.llm_calls != WAVES * WIDTH * LLM_CALLS:
        raise SystemExit(f"crewq fleet run {run_id}: {state.status} {state.error} ({state.usage.llm_calls} LLM calls)")
    return took


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-600:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    try:
        import langgraph_dag
    except ImportError as exc:
        raise SystemExit(f"LangGraph is not installed ({exc}): pip install -e '.[bench]'") from None
    critical = critical_path(args.latency)
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    env["CREWQ_POLICY"] = "trusted"  # a local server and a local folder, the embedded default's trust
    load_before = os.getloadavg()
    server, url = start_latency_server(args.latency)
    with tempfile.TemporaryDirectory() as folder, LocalRedis() as redis_server:
        notes = Path(folder) / "notes"
        notes.mkdir()
        for name in ("tides.md", "moon.md"):
            (notes / name).write_text(name, encoding="utf-8")
        text = crew_yaml(f"{url}/v1", str(notes))
        crew_file, bare_file = Path(folder) / "peers.yaml", Path(folder) / "bare.yaml"
        crew_file.write_text(text, encoding="utf-8")
        bare_file.write_text(crew_yaml(f"{url}/v1", str(notes), waves=1, width=1, model="instant"), encoding="utf-8")
        worker = start_worker(redis_server.url, env)  # ready when it takes the first run's turns
        app = create_app(Settings(redis_url=redis_server.url))
        client = Client(app)
        graph = langgraph_dag.build(f"{url}/v1", str(notes))
        cases = {
            "crewq on a fleet": lambda: fleet_run(client, text, str(crew_file)),
            "LangGraph": lambda: _timed_call(lambda: _check(graph.invoke({"outputs": {}}))),
            "crewq run (embedded)": lambda: timed([CREWQ, "run", str(crew_file)], env),
            "crewq run, 1 instant agent": lambda: timed([CREWQ, "run", str(bare_file)], env),
        }
        try:
            for case in cases.values():  # warm-up: connections, imports, page cache
                case()
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.repeat):
                for name, case in cases.items():
                    times[name].append(case())
        finally:
            app.close()
            worker.terminate()
            worker.wait(30)
            assert server.stdin is not None
            server.stdin.close()
            server.wait(10)
    load_after = os.getloadavg()
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"load: {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min); {os.cpu_count()} cores; "
          f"median of {args.repeat}, interleaved")
    print(f"DAG: 4 waves x 2 agents, full fan-in; per agent 2 LLM calls of {args.latency * 1000:.0f} ms "
          f"(local server, keep-alive) and 1 list_files call; critical path {critical:.3f} s")
    for name, took in median.items():
        print(f"{name:<28} {took:7.3f} s  ({took / critical:.3f}x critical path; min {min(times[name]):.3f}, "
              f"max {max(times[name]):.3f})")
    startup = median["crewq run, 1 instant agent"]
    run = median["crewq run (embedded)"]
    print(f"crewq run less its start-up ({startup:.3f} s): {run - startup:.3f} s = {(run - startup) / critical:.3f}x "
          f"critical path (target <= 1.10)")
    print(f"crewq fleet {median['crewq on a fleet'] / critical:.3f}x critical path (target <= 1.10), "
          f"{median['crewq on a fleet'] / median['LangGraph']:.3f}x LangGraph ({median['LangGraph'] / critical:.3f}x)")


def _check(state: dict) -> None:
    if sorted(state["outputs"].values()) != ["done"] * (WAVES * WIDTH):
        raise SystemExit(f"LangGraph's run ended with {state['outputs']}")


def _timed_call(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
