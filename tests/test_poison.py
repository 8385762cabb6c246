"""A crew, a message or a record in Redis that is wrong gets a clear refusal, and the fleet stays up:
worker and supervisor processes outlive it and run the next good crew."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid

import pytest
from celery import Celery
from kombu import Exchange, Producer

from crewq.config.errors import ConfigError
from crewq.config.loader import load_crew_text
from crewq.workers.app import SUBMIT_TASK, TURN_TASK
from crewq.workers.runspec import RunSpec

from conftest import start_supervisor
from helpers import run_crew, write_crew

GOOD = """
    runtime: {llm_provider: scripted}
    agents:
      - {id: a, script: [{text: fine}]}
    """


def crew_with_queue(queue: str) -> str:
    return ("runtime: {llm_provider: scripted}\n"
            f"agents:\n  - {{id: ok, script: [{{text: x}}]}}\n  - {{id: sneaky, queue: '{queue}', script: [{{text: x}}]}}\n")


@pytest.mark.parametrize("queue", ["unacked", "unacked_index", "unacked_mutex", "_kombu.binding.crewq.turns",
                                   "celery", "celery-task-meta-x", "celeryev", "crewq:active", "crewq:run:r:spec",
                                   "fleet:active", "crewq.turns", "x.reply.celery.pidbox"])
def test_a_queue_named_like_a_redis_key_of_kombu_celery_or_crewq_is_refused_at_load(queue):
    with pytest.raises(ConfigError) as info:
        load_crew_text(crew_with_queue(queue))
    message = str(info.value)
    assert "agents[1]" in message and "queue" in message, message
    if ":" not in queue and not queue.startswith("_"):  # the pattern refuses those before the name is read
        assert f"agent 'sneaky': queue '{queue}'" in message, message


@pytest.mark.parametrize("queue", ["gpu", "ollama-local", "gpu.a100", "Host_2"])
def test_ordinary_queue_names_load(queue):
    assert load_crew_text(crew_with_queue(queue)).crew.agent("sneaky").queue == queue


def test_a_crew_naming_kombus_index_is_refused_by_the_fleet_which_stays_up(app, ledger, redis_url, worker_processes,
                                                                           tmp_path):
    node = worker_processes.start("w", concurrency=2)
    pid = worker_processes.procs[node].pid
    other = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)  # .get() subscribes
    other.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
    with pytest.raises(Exception, match="agent 'sneaky': queue 'unacked_index' is a Redis key"):
        other.send_task(SUBMIT_TASK, args=[crew_with_queue("unacked_index")], queue="crewq.control").get(timeout=30)
    other.close()
    assert ledger.redis.type("unacked_index") in ("none", "zset")
    # A spec planted in Redis around the checks is read through the same model, so no worker uses it.
    planted = json.loads(RunSpec(run_id="r", crew=load_crew_text(GOOD).crew, task="t", waves=[["a"]]).model_dump_json())
    planted["crew"]["agents"][0]["queue"] = "unacked_index"
    with pytest.raises(ValueError, match="agent 'a': queue 'unacked_index'"):
        RunSpec.from_json(json.dumps(planted))
    status = run_crew(app, write_crew(tmp_path, GOOD), timeout=30)
    assert status.status == "succeeded" and status.agents["a"].hostname == node
    assert worker_processes.procs[node].poll() is None and worker_processes.procs[node].pid == pid


def publish_raw(app, task: str, queue: str, body) -> str:
    """A message as anyone who can reach Redis can send it: Celery's headers, a JSON body of any shape."""
    task_id = str(uuid.uuid4())
    with app.connection_for_write() as conn:
        Producer(conn).publish(body, exchange=Exchange(queue, type="direct"), routing_key=queue, serializer="json",
                               headers={"task": task, "id": task_id, "argsrepr": "()", "kwargsrepr": "{}"},
                               declare=[])
    return task_id


@pytest.mark.parametrize("task,queue", [(TURN_TASK, "crewq.turns"), (SUBMIT_TASK, "crewq.control")])
def test_a_malformed_task_body_is_dropped_and_the_worker_runs_on(app, ledger, worker_processes, tmp_path, task, queue):
    node = worker_processes.start("w", concurrency=2)
    proc = worker_processes.procs[node]
    bodies = [[1], {"a": 1}, 5, "text", [1, {}, {}], [[], [], {}]]
    ids = [publish_raw(app, task, queue, body) for body in bodies]
    # The queue is read in order, so once a good crew has run on this worker every bad message was seen.
    status = run_crew(app, write_crew(tmp_path, GOOD), timeout=30)
    assert status.status == "succeeded" and status.agents["a"].hostname == node
    assert proc.poll() is None
    assert ledger.redis.llen(queue) == 0  # dropped, not put back
    taken = " ".join(ledger.redis.hvals("unacked"))
    assert not [task_id for task_id in ids if task_id in taken]
    log = worker_processes.log(node)
    assert "Unrecoverable error" not in log
    assert log.count("malformed message dropped") == len(bodies), log[-3000:]
    assert f"task {task} (id {ids[0]}): malformed message dropped: the body must be [args, kwargs, embed], not [1]" in log


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def plant_run(ledger, run_id: str, spec: str | None, **fields) -> None:
    ledger.redis.sadd(ledger.keys.active, run_id)
    ledger.redis.hset(ledger.keys.run(run_id), mapping={"status": "running", **fields})
    if spec is not None:
        ledger.redis.set(ledger.keys.spec(run_id), spec)


def test_the_supervisor_fails_a_malformed_run_record_and_carries_on(app, ledger, redis_url, worker_processes,
                                                                     tmp_path):
    supervisor = start_supervisor(redis_url, "sup", tmp_path)
    try:
        wait_for(lambda: (ledger.redis.get(ledger.keys.leader) or "").startswith("sup:"), 30,
                 "the supervisor did not become active")
        good = RunSpec(run_id="badfield", crew=load_crew_text(
            "runtime: {llm_provider: scripted}\ntask: {max_duration: 1h}\nagents: [{id: a, script: [{text: x}]}]\n"
        ).crew, task="t", waves=[["a"]]).model_dump_json()
        # Taken messages no Celery wrote (kombu's unacked hash): the redelivery sweep passes them by, and the
        # deadline sweep after it still runs (it fails the runs below).
        body = base64.b64encode(b"[1]").decode()
        ledger.redis.hset("unacked", mapping={
            "garbage": "{{{", "noargs": json.dumps([{"headers": {"task": TURN_TASK, "id": "t1"}, "body": body,
                                                      "properties": {"body_encoding": "base64"}}, "", "crewq.turns"])})
        ledger.redis.zadd("unacked_index", {"garbage": time.time() - 3, "noargs": time.time() - 3})
        plant_run(ledger, "poisonrun", '{"not": "a spec"}')
        plant_run(ledger, "notjson", "{{{")
        plant_run(ledger, "badfield", good, started_at="yesterday")
        for run_id in ("poisonrun", "notjson", "badfield"):
            wait_for(lambda: ledger.run_status(run_id) == "failed", 30, f"{run_id} not failed")
            assert "the run's record in Redis cannot be read" in ledger.run(run_id)["error"]
            assert not ledger.redis.sismember(ledger.keys.active, run_id)
        assert "ValidationError" in ledger.run("poisonrun")["error"]
        assert "could not convert string to float: 'yesterday'" in ledger.run("badfield")["error"]
        # Still the active supervisor: a crash restarts the agent, which only the supervisor does.
        worker_processes.start("w", concurrency=2)
        status = run_crew(app, write_crew(tmp_path, """
            runtime: {llm_provider: scripted}
            agents:
              - {id: a, script: [{error: crash}, {text: restarted}]}
            """), timeout=30)
        assert status.status == "succeeded" and status.output == "restarted"
        assert supervisor.poll() is None
        log = (tmp_path / "sup.log").read_text()
        assert log.count("run poisonrun: the run's record in Redis cannot be read") == 1, log[-3000:]
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(10)
