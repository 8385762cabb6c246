"""The `crewq` command line: the embedded default end to end, and the fleet commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crewq.scheduler.cli import main

from helpers import write_crew

ROOT = Path(__file__).resolve().parent.parent


def crewq_redis_pids() -> set[int]:
    """redis-servers started by crewq (their --dir is a crewq-redis- temporary folder)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"redis-server" in cmdline and b"crewq-redis-" in cmdline:
                found.add(int(entry.name))
    return found


@pytest.mark.slow
def test_demo_on_the_embedded_default_twice_leaves_nothing_behind(tmp_path):
    before = crewq_redis_pids()
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    for _ in range(2):
        out = tmp_path / "explainer.md"
        proc = subprocess.run([sys.executable, "-m", "crewq", "run", "config/crews/demo.yaml",
                               "--input", "topic=tides", "-o", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        for line in ("planner     waiting", "researcher  running  turn 1", "researcher  tool calls: read_file, read_file",
                     "writer      done     after 1 turn", "run         succeeded"):
            assert line in proc.stderr
        assert proc.stdout.startswith("Tides: why the sea breathes")
        assert out.read_text().startswith("Tides: why the sea breathes") and out.read_text().endswith("tides.\n")
        assert proc.stderr.splitlines()[0] == "crewq: running config/crews/demo.yaml on the embedded default"
        assert f"wrote {out}" in proc.stderr and "log during the run" not in proc.stderr
        assert crewq_redis_pids() == before
        assert proc.returncode == 0


def test_the_embedded_fleet_stops_at_once_with_the_run_recorded_and_nothing_left(tmp_path, monkeypatch):
    """The embedded worker and supervisor poll for a stop every 0.1 s and the private Redis is shut
    down by command: what the run recorded is all there when the block ends, and no thread or
    redis-server outlives it (twice in one process: the second starts clean)."""
    import threading

    import redis

    from crewq.scheduler.embedded import embedded_fleet
    from crewq.scheduler.runs import Client

    from helpers import run_crew
    monkeypatch.delenv("CREWQ_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("tides", encoding="utf-8")
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools: [{name: list_files, base_dir: notes}]
        agents:
          - {id: a, tools: [list_files], script: [{tool_calls: [{name: list_files, arguments: {}}]}, {text: "A"}]}
          - {id: b, depends_on: [a], script: [{text: "B"}]}
        """)
    threads_before, redis_before = set(threading.enumerate()), crewq_redis_pids()
    for _ in range(2):
        with embedded_fleet(concurrency=4) as app:
            url = app.settings.redis_url
            status = run_crew(app, path)
            events = [e.type for e in Client(app).events(status.run_id)]
        assert status.status == "succeeded" and status.output == "B", status
        assert [status.agents[a].status for a in ("a", "b")] == ["succeeded", "succeeded"]
        assert status.usage.llm_calls == 3 and events[-1] == "run_finished" and "tool_result" in events
        assert crewq_redis_pids() == redis_before
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1, retry=None).ping()
        left = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        assert left == [], left


@pytest.mark.slow
def test_run_json_and_output_file_relative_to_the_crew(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        task: {input: "about {topic}", output_file: out/deep/result.md}
        agents:
          - {id: a, script: [{text: "A on {input}"}]}
        """)
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    proc = subprocess.run([sys.executable, "-m", "crewq", "run", str(path), "-i", "topic=owls", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "succeeded" and result["output"] == "A on Task:\nabout owls"
    assert result["agents"]["a"]["status"] == "succeeded" and result["usage"]["llm_calls"] == 1
    assert result["usage"]["cost_usd"] == 0 and result["usage"]["unpriced_calls"] == 0  # scripted is free
    # numbers as numbers (`crewq status --json`'s shape): never the ledger's text
    counts = [result["agents"]["a"]["turns"], result["agents"]["a"]["attempt"], result["agents"]["a"]["usage"]["llm_calls"],
              *(result["usage"][k] for k in ("input_tokens", "output_tokens", "llm_calls"))]
    assert all(type(n) is int for n in counts) and counts[:3] == [1, 0, 1]
    assert type(result["finished_at"]) is float and result["waves"] == [["a"]]
    assert (tmp_path / "out/deep/result.md").read_text() == "A on Task:\nabout owls\n"


@pytest.mark.slow
def test_run_task_replaces_the_crews_task_and_takes_inputs(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        task: {input: "about {topic}"}
        agents:
          - {id: a, script: [{text: "A on {input}"}]}
        """)
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    proc = subprocess.run([sys.executable, "-m", "crewq", "run", str(path), "--task", "list {n} {topic}",
                           "-i", "topic=owls", "-i", "n=3", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == "A on Task:\nlist 3 owls"


@pytest.mark.slow
def test_failed_run_exits_1_with_the_reason(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, max_restarts: 0, script: [{error: crash}]}
        """)
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    proc = subprocess.run([sys.executable, "-m", "crewq", "run", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    # The failure once, with the supervisor's decision; the run's end points to it.
    assert proc.stderr.count("scripted crash") == 1
    assert "a    FAILED   attempt 1: scripted: scripted crash" in proc.stderr
    assert "a    supervisor: give up (restart budget spent: 0 restarts" in proc.stderr
    assert "run  failed: agent a failed after 1 attempt (error above)" in proc.stderr
    assert proc.stderr.rstrip().endswith("0 LLM calls, 0 tokens in, 0 out, cost $0.0000")
    assert "Traceback" not in proc.stderr


def test_submit_status_and_events_on_a_fleet(worker, redis_url, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {name: fleet-crew, llm_provider: scripted}
        agents:
          - {id: a, script: [{text: first}]}
          - {id: b, depends_on: [a], script: [{text: second}]}
        """)
    runner = CliRunner()
    env = {"CREWQ_REDIS_URL": redis_url}
    submitted = runner.invoke(main, ["submit", str(path)], env=env)
    assert submitted.exit_code == 0, submitted.output
    run_id = submitted.output.strip()
    assert len(run_id) == 16

    followed = runner.invoke(main, ["events", run_id, "--follow", "--json"], env=env)
    kinds = [json.loads(line)["type"] for line in followed.output.splitlines()]
    assert kinds[0] == "run_submitted" and kinds[-1] == "run_finished"
    assert kinds.count("wave_emitted") == 2 and kinds.count("agent_succeeded") == 2

    shown = runner.invoke(main, ["status", run_id], env=env)
    assert shown.exit_code == 0
    assert f"run {run_id}  fleet-crew  succeeded" in shown.output
    assert "second" in shown.output and "succeeded" in shown.output

    missing = runner.invoke(main, ["status", "nope"], env=env)
    assert missing.exit_code == 2 and "run nope not found" in missing.output


def test_fleet_commands_need_a_broker(tmp_path):
    result = CliRunner().invoke(main, ["status", "x"], env={"CREWQ_REDIS_URL": "", "REDIS_URL": ""})
    assert result.exit_code == 2 and "set CREWQ_REDIS_URL" in result.output


# (The long-running services wait for a Redis that is late instead: tests/test_fleet_reach.py.)
@pytest.mark.parametrize("command", [["status", "x"], ["events", "x"], ["cancel", "x"], ["resume", "x"],
                                     ["submit", "CREW"], ["run", "CREW"], ["workers"], ["runs"], ["limits"]])
@pytest.mark.parametrize("url,expected", [
    ("redis://:s3cret-pw@127.0.0.1:9/0", "crewq: error: cannot reach the fleet's Redis at redis://:***@127.0.0.1:9/0: "
                                         "Error 111 connecting to 127.0.0.1:9. Connection refused.\n"),
    ("localhost:6379", "crewq: error: malformed Redis URL localhost:6379: it must start with redis://, rediss:// "
                       "or unix://\n"),
    ("redis://127.0.0.1:notaport/0", "crewq: error: malformed Redis URL redis://127.0.0.1:notaport/0: "
                                     "Port could not be cast to integer value as 'notaport'\n"),
    ("redis://:p@ss@127.0.0.1:99999/0", "crewq: error: malformed Redis URL redis://:***@127.0.0.1:99999/0: "
                                        "Port out of range 0-65535\n"),
])
def test_a_fleet_that_cannot_be_reached_is_one_line_and_exit_3(tmp_path, command, url, expected):
    crew = write_crew(tmp_path, "runtime: {llm_provider: scripted}\nagents:\n  - {id: a, script: [{text: x}]}\n")
    args = [str(crew) if a == "CREW" else a for a in command]
    done = subprocess.run([sys.executable, "-m", "crewq", *args], env={**os.environ, "CREWQ_REDIS_URL": url},
                          capture_output=True, text=True, timeout=60)
    # (`crewq run` says what it starts before it reaches for the fleet; the error is then its last line.)
    assert done.returncode == 3 and done.stderr.endswith(expected), done.stderr
    assert done.stderr.count("crewq: error:") == 1 and "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_tools_list_shows_builtins_and_a_crews_python_tool(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: echo, python: "fakes.sample_tools:slow_echo"}
        agents:
          - {id: a, tools: [echo], script: [{text: x}]}
        """)
    result = CliRunner().invoke(main, ["tools", "list", str(path)])
    assert result.exit_code == 0, result.output
    names = {line.split()[0]: line for line in result.output.splitlines()}
    assert {"read_file", "web_search", "wikipedia", "http_request", "read_url", "echo"} <= set(names)
    assert "python fakes.sample_tools:slow_echo" in names["echo"]


SLOW = """
    runtime: {llm_provider: scripted}
    agents:
      - {id: a, script: [{latency: 0.2s, tool_calls: [{name: list_files}]}, {latency: 30s, text: never}]}
      - {id: b, depends_on: [a], script: [{text: x}]}
    """


@pytest.mark.slow
def test_ctrl_c_cancels_the_embedded_run_and_says_so(tmp_path):
    path = write_crew(tmp_path, SLOW.replace("{id: a,", "{id: a, tools: [list_files],"))
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    # A terminal's Ctrl-C goes to the whole foreground process group: crewq and what it started.
    # SIGINT as a terminal leaves it: a suite started in the background (`cmd &`) inherits it ignored.
    proc = subprocess.Popen([sys.executable, "-m", "crewq", "run", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:  # wait until a turn is in the middle of its tool calls' chord
        seen.append(line)
        if "running  turn 2" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "interrupted: run " in err and err.rstrip().endswith("cancelled")
    assert "Traceback" not in err and "Aborted!" not in err and "unreachable" not in err


@pytest.mark.slow
def test_a_run_past_its_timeout_is_cancelled_without_tracebacks(tmp_path):
    path = write_crew(tmp_path, SLOW.replace("{id: a,", "{id: a, tools: [list_files],"))
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    proc = subprocess.run([sys.executable, "-m", "crewq", "run", str(path), "--timeout", "3"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    # --timeout is Routex's: the run's deadline, in place of task.max_duration
    assert "the run's max_duration (3s) is exceeded" in proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
