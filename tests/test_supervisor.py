"""The supervisor: restart policies and budgets, decisions in the event log, takeover, cancel/resume."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from crewq.config.loader import load_crew
from crewq.scheduler.embedded import in_process_worker
from crewq.scheduler.runs import Client, submit_loaded
from crewq.scheduler.supervisor import Supervisor, SupervisorThread
from crewq.scheduler.supervisor.service import GROUP

from conftest import HOST, start_supervisor
from helpers import run_crew, write_crew


def kinds(ledger, run_id, kind):
    return [e for e in ledger.events(run_id, count=None) if e["type"] == kind]


def test_one_for_one_restarts_the_agent_from_a_clean_conversation(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: up, script: [{text: up-out}]}
          - id: flaky
            depends_on: [up]
            tools: [list_files]
            script:
              - {tool_calls: [{name: list_files}]}
              - {error: crash}
              - {error: crash}
              - {text: "clean start: {tool_results}|"}
          - {id: down, depends_on: [flaky], script: [{text: "down got it"}]}
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded", status
    decisions = kinds(ledger, status.run_id, "decision")
    assert [(d["action"], d["policy"], d["failed_attempt"]) for d in decisions] == [
        ("restart", "one_for_one", 0), ("restart", "one_for_one", 1)]
    assert decisions[0]["restarts"] == ["flaky"] and "scripted crash" in decisions[0]["error"]
    assert status.agents["flaky"].attempt == 2
    # The third attempt started over: no tool results from attempt 0 in its conversation.
    assert ledger.agent(status.run_id, "flaky")["output"] == "clean start: |"
    assert status.agents["up"].attempt == 0 and status.agents["down"].attempt == 0
    assert status.output == "down got it"


def test_a_configuration_error_at_run_time_fails_at_once_without_restarts(app, ledger, worker, tmp_path):
    # Well formed, so validation passes; the module exists nowhere, which only the worker can tell.
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: shout, python: "fakes.nowhere:shout"}
        agents:
          - {id: a, tools: [shout], script: [{text: never}]}
          - {id: b, depends_on: [a], script: [{text: x}]}
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "configuration error: tools.shout.python: python tool 'fakes.nowhere:shout' cannot be imported" \
        in status.error
    assert "internal error" not in status.error and "Traceback" not in status.error
    decisions = kinds(ledger, status.run_id, "decision")
    assert [(d["action"], d["reason"]) for d in decisions] == [
        ("give_up", "a permanent error: restarting cannot fix it")]
    assert status.agents["a"].attempt == 0 and status.agents["b"].status == "skipped"


def test_an_mcp_server_that_is_down_is_restarted_within_the_budget(app, ledger, worker, tmp_path):
    # Unlike a mistake in the crew file, a server that is down may be up on the next attempt.
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: mcp, extra: {server_name: docs, server_url: "http://127.0.0.1:9/mcp"}}
        agents:
          - {id: a, tools: [docs], max_restarts: 1, script: [{text: never}]}
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "tools.mcp: MCP server 'docs' (http://127.0.0.1:9/mcp) is not usable" in status.error
    assert "configuration error" not in status.error  # the crew file may well be right
    decisions = kinds(ledger, status.run_id, "decision")
    assert [d["action"] for d in decisions] == ["restart", "give_up"]
    assert "restart budget spent" in decisions[-1]["reason"]


def test_budget_spent_fails_the_run_naming_agent_attempts_and_error(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            max_restarts: 2
            restart_window: 60s
            script: [{error: crash}, {error: crash}, {error: crash}, {text: never}]
          - {id: b, depends_on: [a], script: [{text: x}]}
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert status.error == "agent a failed after 3 attempts: scripted: scripted crash [type=crash]"
    assert status.agents["b"].status == "skipped"
    actions = [d["action"] for d in kinds(ledger, status.run_id, "decision")]
    assert actions == ["restart", "restart", "give_up"]
    assert "restart budget spent: 2 restarts within 60s" in kinds(ledger, status.run_id, "decision")[-1]["reason"]


@pytest.mark.parametrize("max_attempts,restarts,reason", [
    (None, 4, "attempt cap reached: 5 attempts (max_attempts 5)"),  # the default
    (20, 10, "the run's restart cap (10) is reached"),
])
def test_a_failure_slower_than_the_window_stops_at_the_absolute_caps(app, ledger, worker, tmp_path, max_attempts,
                                                                      restarts, reason):
    crashes = ", ".join(["{error: crash}"] * 12)
    cap = f"max_attempts: {max_attempts}" if max_attempts else ""
    path = write_crew(tmp_path, f"""
        runtime: {{llm_provider: scripted}}
        agents:
          - id: slow
            max_restarts: 1
            restart_window: 1ms
            {cap}
            script: [{crashes}, {{text: never}}]
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    decisions = kinds(ledger, status.run_id, "decision")
    assert [d["action"] for d in decisions] == ["restart"] * restarts + ["give_up"]
    assert decisions[-1]["reason"] == reason
    assert f"agent slow failed after {restarts + 1} attempts" in status.error


def test_rest_for_one_reruns_the_downstream_agents_that_had_started(app, ledger, supervisor, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, restart: rest_for_one, script: [{text: a-new}]}
          - {id: b, depends_on: [a], script: [{text: "b saw {input}"}]}
          - {id: c, depends_on: [b], script: [{text: c-new}]}
          - {id: other, script: [{text: o1}]}
        """)
    run_id = submit_loaded(app, load_crew(path))  # no worker yet: we shape the state by hand
    ledger.settle_agent(run_id, "other", 0, "succeeded", output="o1")
    ledger.update_agent(run_id, "b", status="succeeded", output="stale b")
    ledger.update_agent(run_id, "c", status="running", started_at=time.time())
    ledger.claim_wave(run_id, 1, "an-earlier-advance")
    ledger.wave_advanced(run_id, 1)
    from crewq.workers.turn import report_failure
    report_failure(ledger, run_id, "a", 0, 0, "a found its input wrong")

    with in_process_worker(app, concurrency=4, hostname=f"late@{HOST}"):
        for _ in Client(app).events(run_id, follow=True, timeout=30):
            pass
    status = Client(app).status(run_id)
    assert status.status == "succeeded", status
    decision = kinds(ledger, run_id, "decision")[0]
    assert decision["policy"] == "rest_for_one" and decision["restarts"] == ["a", "b", "c"]
    assert {a: status.agents[a].attempt for a in "abc"} == {"a": 1, "b": 1, "c": 1}
    assert status.agents["other"].attempt == 0
    # b's stale output was thrown away: it ran again on a's new output.
    assert ledger.agent(run_id, "b")["output"] == "b saw Task: (none given)\n\nOutput of a:\na-new"
    assert status.output == "## c\n\nc-new\n\n## other\n\no1"


def test_one_for_all_restarts_the_run_from_wave_zero(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: steady, script: [{text: s1}, {text: s2}]}
          - {id: shaky, restart: one_for_all, script: [{latency: 0.2s, error: crash}, {text: k2}]}
          - {id: join, depends_on: [steady, shaky], script: [{text: "{input}"}]}
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded", status
    decision = kinds(ledger, status.run_id, "decision")[0]
    assert decision["policy"] == "one_for_all" and decision["restarts"] == ["join", "shaky", "steady"]
    assert status.agents["steady"].attempt == 1 and status.agents["steady"].usage.llm_calls == 2
    assert "Output of steady:\ns2" in status.output and "Output of shaky:\nk2" in status.output


def test_a_pending_report_is_handled_by_the_next_supervisor(app, ledger, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, script: [{error: crash}, {text: recovered}]}
        """)
    with in_process_worker(app, concurrency=4, hostname=f"nosup@{HOST}"):
        Supervisor(app, "first")  # creates the consumer group, then "dies" before reading
        run_id = submit_loaded(app, load_crew(path))
        # Waiting for the worker to report the crash: XREAD blocks until the stream has an entry.
        assert ledger.redis.xread({ledger.keys.failures: "0"}, count=1, block=20_000), "no failure reported"
        # A supervisor read the report and died before handling it: it stays pending.
        ledger.redis.xreadgroup(GROUP, "died-mid-report", {ledger.keys.failures: ">"}, count=10)
        assert ledger.redis.xpending(ledger.keys.failures, GROUP)["pending"] == 1
        assert ledger.run_status(run_id) == "running"
        with SupervisorThread(app, name="second"):
            for _ in Client(app).events(run_id, follow=True, timeout=30):
                pass
    assert ledger.run_status(run_id) == "succeeded"
    assert ledger.redis.xpending(ledger.keys.failures, GROUP)["pending"] == 0
    assert [d["action"] for d in kinds(ledger, run_id, "decision")] == ["restart"]


@pytest.mark.slow
def test_the_standby_takes_over_when_the_active_supervisor_dies(app, ledger, redis_url, tmp_path):
    first = start_supervisor(redis_url, "sup-a", tmp_path)
    second = None
    try:
        deadline = time.monotonic() + 30
        while not (ledger.redis.get(ledger.keys.leader) or "").startswith("sup-a:"):
            assert time.monotonic() < deadline, (tmp_path / "sup-a.log").read_text()
            time.sleep(0.05)
        second = start_supervisor(redis_url, "sup-b", tmp_path)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        path = write_crew(tmp_path, """
            runtime: {llm_provider: scripted}
            agents:
              - {id: a, script: [{error: crash}, {text: after takeover}]}
            """)
        with in_process_worker(app, concurrency=4, hostname=f"tk@{HOST}"):
            status = run_crew(app, path, timeout=30)
        assert status.status == "succeeded", status
        assert ledger.redis.get(ledger.keys.leader).startswith("sup-b:")
        assert status.output == "after takeover"
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)


@pytest.mark.slow
def test_the_supervisor_logs_its_decisions_as_json_lines(app, ledger, redis_url, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: flaky, script: [{text: never}]}
          - {id: broken, script: [{text: never}]}
        """)
    run_id = submit_loaded(app, load_crew(path))  # no worker: the failures are reported by hand
    from crewq.workers.turn import report_failure
    report_failure(ledger, run_id, "flaky", 0, 0, "a timeout")
    report_failure(ledger, run_id, "broken", 0, 0, "a bad key", permanent=True)
    proc = start_supervisor(redis_url, "sup-json", tmp_path, env={"CREWQ_LOG_FORMAT": "json"})
    try:
        for _ in Client(app).events(run_id, follow=True, timeout=30):
            pass
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    text = (tmp_path / "sup-json.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len(text.splitlines()), text  # every line is JSON, none plain text
    decisions = {line["agent_id"]: line for line in lines if line["logger"] == "crewq.supervisor"
                 and line["run_id"] == run_id}
    assert decisions["flaky"]["level"] == "INFO"
    assert f"run {run_id}: attempt 0 of flaky failed (a timeout); one_for_one restarts flaky" \
        in decisions["flaky"]["message"]
    assert decisions["broken"]["level"] == "WARNING"
    assert decisions["broken"]["message"] == (f"run {run_id}: attempt 0 of broken failed (a bad key); "
                                              "giving up: a permanent error: restarting cannot fix it")


def test_cancel_then_resume_continues_from_the_completed_agents(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: first, script: [{text: first-out}]}
          - {id: slow, depends_on: [first], script: [{latency: 1s, text: late}, {text: slow-out}]}
          - {id: last, depends_on: [slow], script: [{text: "{input}"}]}
        """)
    client = Client(app)
    run_id = submit_loaded(app, load_crew(path))
    for event in client.events(run_id, follow=True, timeout=30):
        if event.type == "turn_started" and event.agent == "slow":
            break
    assert client.cancel(run_id) is True
    assert client.status(run_id).status == "cancelled"
    assert client.cancel(run_id) is False
    # The LLM call in flight (1 s) is abandoned: the agent ends cancelled, nothing is recorded after
    # run_finished, and the call's usage still counts.
    deadline = time.monotonic() + 20
    while ledger.agent(run_id, "slow").get("status") == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)  # the abandoned call returns within its 1 s latency
    assert ledger.agent(run_id, "slow")["status"] == "cancelled"
    events = ledger.events(run_id, count=None)
    print("events of the cancelled run:", [(e["type"], e.get("agent")) for e in events])
    assert events[-1]["type"] == "run_finished"
    assert [e for e in events if e.get("agent") == "slow" and e["type"] in ("llm_call", "agent_succeeded")] == []
    assert int(ledger.agent(run_id, "slow").get("input_tokens") or 0) > 0

    again = client.resume(run_id)
    assert "last" in again and "first" not in again
    result = client.wait(run_id, timeout=30)
    assert result.status == "succeeded"
    assert "Output of slow:\n" in result.output
    assert result.agents["first"].attempt == 0
    assert [e["type"] for e in ledger.events(run_id, count=None)].count("run_resumed") == 1


def test_the_sweep_ends_a_run_whose_workers_vanished(app, ledger, supervisor, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        task: {max_duration: 0.5s}
        agents:
          - {id: a, script: [{text: never runs}]}
        """)
    run_id = submit_loaded(app, load_crew(path))  # no worker at all
    for _ in Client(app).events(run_id, follow=True, timeout=20):
        pass
    status = Client(app).status(run_id)
    assert status.status == "failed"
    # (and why it never ran: the deadline's reason names what it waited for)
    assert status.error == ("the run's max_duration (0.5s) is exceeded; no live worker on the fleet: nothing runs "
                            "until one starts (`crewq worker`)")


def test_cancel_marks_the_agents_that_never_started_cancelled(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: slow, script: [{latency: 1s, text: late}]}
          - {id: after, depends_on: [slow], script: [{text: x}]}
        """)
    client = Client(app)
    run_id = submit_loaded(app, load_crew(path))
    for event in client.events(run_id, follow=True, timeout=30):
        if event.type == "turn_started" and event.agent == "slow":
            break
    assert client.cancel(run_id) is True
    assert client.status(run_id).agents["after"].status == "cancelled"
