"""A dead worker loses no work and repeats none: SIGKILL mid-turn, a killed pool child, and chaos."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

from crewq.config.loader import load_crew
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.app import ADVANCE_TASK

from helpers import stored_result, write_crew


def llm_events(ledger, run_id):
    return [e for e in ledger.events(run_id, count=None) if e["type"] in ("llm_call", "agent_succeeded", "requeued")]


def test_sigkill_of_a_worker_mid_turn(app, ledger, supervisor, worker_processes, tmp_path):
    nodes = [worker_processes.start("k1", concurrency=4), worker_processes.start("k2", concurrency=4)]
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: echo, python: "fakes.sample_tools:slow_echo"}
        agents:
          - id: a
            tools: [echo]
            script:
              - tool_calls: [{name: echo, arguments: {text: x, delay: 3}}]
              - text: "a: {tool_results}"
          - {id: b, depends_on: [a], script: [{text: "b: {input}"}]}
        """)
    client = Client(app)
    run_id = submit_loaded(app, load_crew(path))
    for event in client.events(run_id, follow=True, timeout=30):
        if event.type == "tool_call":
            victim = event.host
            break
    worker_processes.kill(victim)
    killed_at = time.time()
    status = client.wait(run_id, timeout=60)

    assert status.output == "b: Task: (none given)\n\nOutput of a:\na: echo:x"
    events = ledger.events(run_id, count=None)
    requeued = [e for e in events if e["type"] == "requeued"]
    assert len(requeued) == 1 and requeued[0]["dead_worker"].startswith(victim)
    # The recorded LLM reply was not asked for again: one call per turn, two turns.
    assert status.agents["a"].usage.llm_calls == 2
    # No agent output was recorded twice, and the turn ran again on the other worker.
    assert [e["agent"] for e in events if e["type"] == "agent_succeeded"] == ["a", "b"]
    rerun = [e for e in events if e["type"] == "turn_started" and e["agent"] == "a" and e["ts"] > killed_at]
    assert rerun and {e["host"] for e in rerun} == set(nodes) - {victim}
    assert status.agents["a"].attempt == 0  # worker loss costs no restart budget
    assert not [e for e in events if e["type"] == "decision"]


def test_a_killed_pool_child_is_redelivered_at_once(app, ledger, supervisor, worker_processes, tmp_path):
    worker_processes.start("pf", concurrency=2, pool="prefork")
    marker = tmp_path / "pid"
    path = write_crew(tmp_path, f"""
        runtime: {{llm_provider: scripted}}
        tools:
          - {{name: wait, python: "fakes.sample_tools:pid_then_wait"}}
        agents:
          - id: a
            tools: [wait]
            script:
              - tool_calls: [{{name: wait, arguments: {{marker: "{marker}", delay: 30}}}}]
              - text: "{{tool_results}}"
        """)
    client = Client(app)
    run_id = submit_loaded(app, load_crew(path))
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)  # the tool writes its pid when it starts
    child = int(marker.read_text())
    marker.unlink()
    os.kill(child, signal.SIGKILL)
    while not marker.exists() or not marker.read_text():  # the call runs again, in a new child
        assert time.monotonic() < deadline + 30
        time.sleep(0.05)
    assert int(marker.read_text()) != child
    client.cancel(run_id)  # no need to wait the 30 s out
    assert ledger.agent(run_id, "a")["attempt"] == "0"
    assert not [e for e in ledger.events(run_id, count=None) if e["type"] == "decision"]


def wait_or_explain(client, ledger, run_id, timeout=60):
    """Wait for the run; if it is stuck, fail with what the ledger and the broker show about it."""
    try:
        return client.wait(run_id, timeout=timeout)
    except Exception as exc:
        events = "\n".join(f"  {e['ts']:.3f} {e['type']} {e.get('agent') or ''} "
                           f"{ {k: v for k, v in e.items() if k not in ('id', 'ts', 'type', 'agent')} }"
                           for e in ledger.events(run_id, count=None))
        broker = ledger.redis
        raise AssertionError(f"{exc}\nevents:\n{events}\nheld: {ledger.held()}\n"
                             f"unacked: {broker.hlen('unacked')}, queues: "
                             f"{ {q: broker.llen(q) for q in ('crewq.turns', 'crewq.tools', 'crewq.control')} }\n"
                             f"alive: {broker.keys('crewq:worker:*')}") from None


def chaos_crew(tmp_path, i: int):
    return load_crew(write_crew(tmp_path, f"""
        runtime: {{llm_provider: scripted}}
        tools:
          - {{name: echo, python: "fakes.sample_tools:slow_echo"}}
        agents:
          - id: a
            tools: [echo]
            script:
              - {{latency: 0.5s, tool_calls: [{{name: echo, arguments: {{text: "{i}", delay: 1}}}}]}}
              - {{latency: 0.5s, text: "a{i} {{tool_results}}"}}
          - {{id: b, script: [{{latency: 1.5s, text: "b{i}"}}]}}
          - {{id: c, depends_on: [a, b], script: [{{text: "c{i} <- {{input}}"}}]}}
        """, name=f"crew{i}.yaml"))


def test_chaos_twenty_crews_while_workers_die(app, ledger, supervisor, worker_processes, tmp_path):
    names = ["c1", "c2"]
    for name in names:
        worker_processes.start(name, concurrency=8)
    runs: dict[int, str] = {}
    kills = []

    # The crews arrive in four batches, and after each batch a random worker is killed as soon as it
    # holds some of the work (then restarted). Pacing kills by the work, not by a clock, keeps every
    # kill meaningful on a fast machine and a slow one alike.
    def killer():
        rng = random.Random(7)
        for first in range(0, 20, 5):
            for i in range(first, first + 5):
                runs[i] = submit_loaded(app, crews[i])
            name = rng.choice(names)
            node = next(n for n in worker_processes.procs if n.startswith(name + "@"))
            deadline = time.monotonic() + 30
            while (not any(h["host"].startswith(node) for h in ledger.held().values())
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            worker_processes.kill(node)
            kills.append(node)
            worker_processes.start(name, concurrency=8)

    crews = {i: chaos_crew(tmp_path, i) for i in range(20)}
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    thread.join(240)
    assert not thread.is_alive() and len(kills) == 4
    client = Client(app)
    results = {i: wait_or_explain(client, ledger, run_id) for i, run_id in sorted(runs.items())}
    requeued = [e for run_id in runs.values() for e in ledger.events(run_id, count=None) if e["type"] == "requeued"]
    assert requeued, "no kill hit a worker while it held work"
    for i, status in results.items():
        assert status.output == f"c{i} <- Task: (none given)\n\nOutput of a:\na{i} echo:{i}\n\nOutput of b:\nb{i}"
        succeeded = [e["agent"] for e in ledger.events(status.run_id, count=None) if e["type"] == "agent_succeeded"]
        assert sorted(succeeded) == ["a", "b", "c"]


# A consumer that takes one message the way a worker does (into kombu's unacked hash), then dies
# before Celery could record it: the window between kombu's delivery and `task_received`.
TAKE_AND_DIE = """
import os, sys
from kombu import Connection
with Connection(sys.argv[1]) as connection:
    message = connection.default_channel.basic_get(sys.argv[2], no_ack=False)
    print(message.headers["id"], flush=True)
    os._exit(0)
"""


def take_a_turn_and_die(app, redis_url: str, tmp_path) -> str:
    """Submit a one-agent crew with no worker running, and have TAKE_AND_DIE take its first turn's
    message into kombu's unacked hash. Returns that task's id."""
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, script: [{text: "a done"}]}
        """)
    submit_loaded(app, load_crew(path))
    taker = subprocess.run([sys.executable, "-c", TAKE_AND_DIE, redis_url, "crewq.turns"],
                           capture_output=True, text=True, timeout=30)
    assert taker.returncode == 0, taker.stderr
    return taker.stdout.strip()


def test_a_redelivered_message_taken_at_once_keeps_its_new_holders_record(app, ledger, redis_url, tmp_path,
                                                                        monkeypatch):
    # The race the SIGKILL test once hit: the restored message is taken and recorded by a live
    # worker before the supervisor has removed the dead holder's record.
    from kombu.transport.redis import QoS

    from crewq.scheduler.supervisor.redeliver import Redeliverer
    task_id = take_a_turn_and_die(app, redis_url, tmp_path)
    ledger.hold(task_id, "crewq.agent_turn", ["r", "a", 0, 0], "dead@host#1")  # no heartbeat: dead
    real_restore = QoS.restore_by_tag

    def restore_then_taken_at_once(self, tag, client=None, leftmost=False):
        real_restore(self, tag, client=client, leftmost=leftmost)
        ledger.beat("live@host#2", 30)
        ledger.hold(task_id, "crewq.agent_turn", ["r", "a", 0, 0], "live@host#2")
    monkeypatch.setattr(QoS, "restore_by_tag", restore_then_taken_at_once)

    redeliverer = Redeliverer(app, ledger, grace=2.0)
    try:
        swept = redeliverer.sweep(time.time())
    finally:
        redeliverer.close()
    assert [(o.task_id, o.dead_worker) for o in swept] == [(task_id, "dead@host#1")]
    assert ledger.held()[task_id]["host"] == "live@host#2"


def test_a_finished_task_awaiting_its_ack_is_not_redelivered(app, ledger, redis_url, tmp_path):
    # Celery acks a message just after the task's postrun released its record: for that moment the
    # message is taken and unheld, like one whose worker died before recording it.
    from crewq.scheduler.supervisor.redeliver import Redeliverer
    task_id, taken_at = take_a_turn_and_die(app, redis_url, tmp_path), time.time()
    ledger.release(task_id)
    ledger.redis.hset(ledger.keys.released, task_id, taken_at + 2.0)  # it finished 2 s after it was taken
    redeliverer = Redeliverer(app, ledger, grace=2.0)
    try:
        assert redeliverer.sweep(taken_at + 2.5) == []  # finished 0.5 s ago: its ack is on its way
        # Still unacked long after it finished: its worker died before acking, so it goes back.
        assert [o.task_id for o in redeliverer.sweep(taken_at + 5.0)] == [task_id]
    finally:
        redeliverer.close()
    assert ledger.redis.hget(ledger.keys.released, task_id) is None  # forgotten once old


def test_a_message_taken_by_a_worker_that_died_before_recording_it(app, ledger, supervisor, worker_processes,
                                                                    redis_url, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, script: [{text: "a done"}]}
        """)
    run_id = submit_loaded(app, load_crew(path))  # no worker yet: the turn waits in its queue
    taker = subprocess.run([sys.executable, "-c", TAKE_AND_DIE, redis_url, "crewq.turns"],
                           capture_output=True, text=True, timeout=30)
    assert taker.returncode == 0, taker.stderr
    taken = taker.stdout.strip()
    assert ledger.redis.hlen("unacked") == 1 and ledger.redis.llen("crewq.turns") == 0

    worker_processes.start("w", concurrency=2)
    status = Client(app).wait(run_id, timeout=30)

    assert status.output == "a done"
    requeued = [e for e in ledger.events(run_id, count=None) if e["type"] == "requeued"]
    assert [(e["task_id"], e["what"], e["dead_worker"]) for e in requeued] == [
        (taken, "a turn 0", "a worker that died before recording it")]


def test_a_redelivered_advance_sends_the_wave_its_first_delivery_claimed(app, ledger, tmp_path):
    """`advance` claimed wave 0 and died before sending wave 1: its redelivery (same task id) sends it,
    any other `advance` of that wave does not."""
    from crewq.scheduler.embedded import in_process_worker
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, script: [{text: "a done"}]}
          - {id: b, depends_on: [a], script: [{text: "b after {input}"}]}
        """)
    run_id = submit_loaded(app, load_crew(path))
    ledger.settle_agent(run_id, "a", 0, "succeeded", output="a done")
    assert ledger.claim_wave(run_id, 0, "first-advance")  # ... and its worker died here

    with in_process_worker(app, concurrency=4, hostname="redelivery@test"):
        app.signature(ADVANCE_TASK, args=([], run_id, 0)).apply_async(task_id="another-advance")
        assert stored_result(app, "another-advance") == "already advanced"
        app.signature(ADVANCE_TASK, args=([], run_id, 0)).apply_async(task_id="first-advance")
        status = Client(app).wait(run_id, timeout=30)
        assert stored_result(app, "first-advance") == "emitted wave 1"

    assert status.output == "b after Task: (none given)\n\nOutput of a:\na done"
    events = ledger.events(run_id, count=None)
    assert [e["wave"] for e in events if e["type"] == "wave_emitted"] == [0, 1]
    assert [e["agent"] for e in events if e["type"] == "agent_succeeded"] == ["b"]


def test_a_message_lost_before_kombu_recorded_it_is_sent_again_from_the_ledger(app, ledger, supervisor, tmp_path):
    """A worker killed between BRPOP and kombu's `unacked` write loses the message outright: the run
    goes quiet with nothing in flight, and the supervisor sends its next step again."""
    from crewq.scheduler.embedded import in_process_worker
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, script: [{text: "a done"}]}
          - {id: b, depends_on: [a], script: [{text: "b after {input}"}]}
        """)
    run_id = submit_loaded(app, load_crew(path))  # no worker yet: a's turn waits in its queue...
    lost = ledger.redis.rpop("crewq.turns")       # ...and is popped the way BRPOP pops it, then lost
    assert run_id in lost and ledger.redis.hlen("unacked") == 0
    with in_process_worker(app, concurrency=2, hostname="after-loss@test"):
        status = Client(app).wait(run_id, timeout=30)

    assert status.output == "b after Task: (none given)\n\nOutput of a:\na done"
    events = ledger.events(run_id, count=None)
    assert [(e["what"], e["dead_worker"]) for e in events if e["type"] == "requeued"] == [
        ("a turn 0", "none: the run was quiet for 3s with nothing in flight")]
    assert [e["agent"] for e in events if e["type"] == "agent_succeeded"] == ["a", "b"]
