"""No silent waits: `crewq run` and `crewq submit` say when no live worker serves a queue a crew
needs (from the workers' heartbeats), and `crewq workers` lists the live workers, their queues and
what they hold. On real workers: one in a thread on crewq's queues, one process on `gpu`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from crewq.config.loader import load_crew
from crewq.scheduler.cli import main
from crewq.scheduler.runs import Client
from crewq.scheduler.serving import Gaps

from conftest import FAST_ENV, HOST, ROOT
from helpers import Lines, write_crew

GPU = """
    runtime: {llm_provider: scripted}
    agents:
      - {id: plain, script: [{text: "plain done"}]}
      - {id: gpu-agent, queue: gpu, depends_on: [plain], script: [{text: "gpu done"}]}
    """


def crewq(*args: str, redis_url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crewq", *args], cwd=ROOT, text=True,
                            env={**os.environ, "CREWQ_REDIS_URL": redis_url, **FAST_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_gaps_follow_the_heartbeats(app, tmp_path):
    """No worker, then one on crewq's queues only, then one on gpu: what a waiting `crewq run` says."""
    ledger, queues = app.ledger, app.settings.queues
    gaps = Gaps(ledger, load_crew(write_crew(tmp_path, GPU)).crew, queues, every=0)
    assert gaps.check() == ["no live worker on the fleet: nothing runs until one starts (`crewq worker`)"]
    ledger.beat("main@h#1", 5, queues.all())
    assert gaps.check() == ["no live worker serves queue gpu, which agent gpu-agent needs "
                            "(start one: `crewq worker -Q gpu`)"]
    assert gaps.check() == []  # said once
    ledger.beat("gpu@h#2", 5, ["gpu"])
    assert gaps.check() == ["a live worker serves queue gpu now"] and gaps.text() == ""


def test_workers_lists_queues_and_held_turns(worker, tmp_path):
    crew = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: slow, script: [{latency: 2s, text: "done"}]}
        """)
    client = Client(worker)
    run_id = client.submit(crew)
    next(e for e in client.events(run_id, follow=True, timeout=30) if e.type == "turn_started")
    found = client.workers()
    assert [w.host.split("#")[0] for w in found] == [f"thread@{HOST}"]
    assert found[0].queues == sorted(worker.settings.queues.all())
    assert [(t.what, t.run_id, t.agent_id) for t in found[0].held] == [("slow turn 0", run_id, "slow")]

    env = {"CREWQ_REDIS_URL": worker.settings.redis_url}
    listed = CliRunner().invoke(main, ["workers", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["held"][0]["what"] == "slow turn 0"
    text = CliRunner().invoke(main, ["workers"], env=env).output
    assert f"thread@{HOST}#" in text and "crewq.control, crewq.tools, crewq.turns  holds 1 task" in text
    assert f"slow turn 0  run {run_id}" in text
    assert client.wait(run_id, timeout=30).output == "done"


def test_workers_on_a_fleet_without_workers_says_so(redis_url):
    done = CliRunner().invoke(main, ["workers"], env={"CREWQ_REDIS_URL": redis_url})
    assert done.exit_code == 0 and "no live worker on the fleet" in done.output
    assert json.loads(CliRunner().invoke(main, ["workers", "--json"], env={"CREWQ_REDIS_URL": redis_url}).output) == []


def test_submit_says_when_no_worker_is_alive(redis_url, tmp_path):
    crew = write_crew(tmp_path, "runtime: {llm_provider: scripted}\nagents:\n  - {id: a, script: [{text: x}]}\n")
    done = CliRunner().invoke(main, ["submit", str(crew)], env={"CREWQ_REDIS_URL": redis_url})
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().isalnum()  # the run id, alone on stdout
    assert "crewq: warning: no live worker on the fleet" in done.stderr


def test_submit_names_the_queue_nobody_serves_and_its_agents(worker, tmp_path):
    done = CliRunner().invoke(main, ["submit", str(write_crew(tmp_path, GPU))],
                              env={"CREWQ_REDIS_URL": worker.settings.redis_url})
    assert done.exit_code == 0, done.output
    assert done.stderr == ("crewq: warning: no live worker serves queue gpu, which agent gpu-agent needs "
                           "(start one: `crewq worker -Q gpu`)\n")
    plain = Client(worker).submit(write_crew(tmp_path, GPU.replace("queue: gpu, ", ""), "plain.yaml"))
    assert Client(worker).unserved(plain) == []


def test_a_run_nobody_serves_ends_at_its_timeout_with_that_reason(worker, tmp_path):
    proc = crewq("run", "--plain", "-T", "3s", str(write_crew(tmp_path, GPU)), redis_url=worker.settings.redis_url)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err
    gap = "no live worker serves queue gpu, which agent gpu-agent needs (start one: `crewq worker -Q gpu`)"
    assert f"crewq: warning: {gap}" in err  # the warning line, before the run starts
    assert any(line.split()[1:] == ["run", *gap.split()] for line in err.splitlines())  # and a progress line
    assert f"the run's max_duration (3s) is exceeded; {gap}" in err
    run_id = Client(worker).runs(1)[0].run_id
    assert Client(worker).status(run_id).error == f"the run's max_duration (3s) is exceeded; {gap}"
    assert "Traceback" not in err


def test_a_worker_that_comes_later_clears_the_warning(worker, worker_processes, tmp_path):
    proc = crewq("run", "--plain", str(write_crew(tmp_path, GPU)), redis_url=worker.settings.redis_url)
    lines = Lines(proc)
    lines.wait_for("crewq: warning: no live worker serves queue gpu, which agent gpu-agent needs")
    lines.wait_for("done     after")  # the agents on crewq's queues run meanwhile
    worker_processes.start("gpu", queues="gpu")
    lines.wait_for("a live worker serves queue gpu now")
    err = lines.rest()
    assert proc.returncode == 0, err
    assert proc.stdout.read().strip() == "gpu done"
