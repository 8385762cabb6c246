"""Fallback agents: a given-up agent's work handed to a standby, on a real worker and supervisor."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from rich.console import Console

from crewq.config.loader import load_crew
from crewq.config.states import AgentStatus
from crewq.scheduler.commands import format_status
from crewq.scheduler.live import table
from crewq.scheduler.metrics import registry_for
from crewq.scheduler.progress import Progress, RunView
from crewq.scheduler.runs import Client, submit_loaded
from crewq.scheduler.supervisor.stall import restart_stalled
from crewq.workers.agent_breaker import breakers_of
from crewq.workers.refs import TurnRef

from helpers import run_crew, write_crew

CREW = """
    runtime: {name: fallback-crew, llm_provider: scripted}
    task: {input: "tides"}
    agents:
      - {id: planner, script: [{text: "plan for tides"}]}
      - id: researcher
        depends_on: [planner]
        fallback: [standby_researcher]
        script: [{error: {status: 400, message: "the researcher always fails"}}]
      - id: standby_researcher
        standby: true
        script: [{text: "standby notes from <{input}>"}]
      - {id: writer, depends_on: [researcher], script: [{text: "writer got <{input}>"}]}
    """


def kinds(ledger, run_id):
    return [(e["type"], e["agent"]) for e in ledger.events(run_id, count=None)]


def test_a_given_up_agent_is_replaced_by_its_standby_and_the_writer_gets_its_output(app, ledger, worker, tmp_path):
    status = run_crew(app, write_crew(tmp_path, CREW))
    assert status.status == "succeeded", status
    events = ledger.events(status.run_id, count=None)
    decision = next(e for e in events if e["type"] == "decision")
    assert (decision["agent"], decision["action"]) == ("researcher", "give_up")
    assert "permanent" in decision["reason"] and "always fails" in decision["error"]
    assert decision["restarts"] == []  # the standby takes over: nothing is restarted
    handed = next(e for e in events if e["type"] == "handed_over")
    assert (handed["agent"], handed["fallback"], handed["stands_for"]) == ("researcher", "standby_researcher",
                                                                           "researcher")
    order = kinds(ledger, status.run_id)
    assert order.index(("decision", "researcher")) < order.index(("handed_over", "researcher")) \
        < order.index(("turn_started", "standby_researcher")) < order.index(("turn_started", "writer"))
    # The standby had the researcher's task and upstream output; the writer got the standby's, labelled.
    standby = ledger.agent(status.run_id, "standby_researcher")["output"]
    assert standby.startswith("standby notes from <Task:\ntides") and "Output of planner:\nplan for tides" in standby
    assert status.output == f"writer got <Task:\ntides\n\nOutput of researcher (by standby_researcher):\n{standby}>"
    assert status.agents["researcher"].status == "succeeded" and status.agents["researcher"].served_by == \
        "standby_researcher"
    assert status.agents["standby_researcher"].stands_for == "researcher"
    assert status.agents["researcher"].usage.llm_calls == 0  # a 400 is not answered: no usage counted
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for m in registry_for(ledger).collect() for sample in m.samples}
    assert samples[("crewq_handovers_total", (("agent", "researcher"), ("fallback", "standby_researcher")))] == 1
    assert samples[("crewq_events_total", (("type", "handed_over"),))] == 1


CHAIN = """
    runtime: {name: chain-crew, llm_provider: scripted}
    agents:
      - id: researcher
        fallback: [first, second]
        script: [{error: {status: 400, message: "researcher down"}}]
      - id: first
        standby: true
        max_restarts: 1
        script: [{error: crash}, {error: crash}]
      - {id: second, standby: true, script: [{text: "second did it"}]}
      - {id: writer, depends_on: [researcher], script: [{text: "writer got <{input}>"}]}
    """


def test_the_next_fallback_takes_over_when_the_first_fails_too(app, ledger, worker, tmp_path):
    status = run_crew(app, write_crew(tmp_path, CHAIN))
    assert status.status == "succeeded", status
    events = ledger.events(status.run_id, count=None)
    # The first fallback is restarted by its own policy and budget, then given up: the second takes over.
    decisions = [(e["agent"], e["action"]) for e in events if e["type"] == "decision"]
    assert decisions == [("researcher", "give_up"), ("first", "restart"), ("first", "give_up")]
    handed = [(e["agent"], e["fallback"], e["stands_for"]) for e in events if e["type"] == "handed_over"]
    assert handed == [("researcher", "first", "researcher"), ("first", "second", "researcher")]
    assert status.agents["researcher"].served_by == "second"
    assert "Output of researcher (by second):\nsecond did it" in status.output


def test_when_every_fallback_fails_the_run_fails_naming_the_agent_and_its_fallbacks(app, ledger, worker, tmp_path):
    crew = CHAIN.replace('script: [{text: "second did it"}]', 'script: [{error: {status: 403, message: "no"}}]')
    status = run_crew(app, write_crew(tmp_path, crew))
    assert status.status == "failed"
    assert status.failed_agent == "researcher"
    assert status.error.startswith("agent researcher failed after 1 attempt: scripted: researcher down")
    assert "its fallbacks failed too (first, second; the last, second: scripted: no" in status.error
    assert status.agents["writer"].status == "skipped"
    assert [e["agent"] for e in ledger.events(status.run_id, count=None) if e["type"] == "handed_over"] == [
        "researcher", "first"]


def test_run_progress_and_status_show_the_hand_over(app, ledger, worker, tmp_path):
    status = run_crew(app, write_crew(tmp_path, CREW))
    out = StringIO()
    printer = Progress(RunView("fallback-crew", status.waves, started=0.0), out)
    for event in ledger.events(status.run_id, count=None):
        printer(event)
    text = " ".join(out.getvalue().split())  # columns padded to the width of the scheduled agents' ids
    assert "researcher supervisor: give up (a permanent error: restarting cannot fix it)" in text
    assert "researcher supervisor: hand over to standby_researcher (a permanent error" in text
    assert "standby_researcher done after 1 turn" in text
    assert "researcher done by its fallback standby_researcher" in text
    assert printer.view.agents["researcher"].state == "done by standby_researcher"
    grid = StringIO()  # the live view's table: the standby has a row in its agent's wave
    Console(file=grid, width=140).print(table(printer.view, now=printer.view.started))
    rows = {line.split()[1]: line.split() for line in grid.getvalue().splitlines()[2:] if len(line.split()) > 2}
    assert rows["researcher"][:5] == ["1", "researcher", "done", "by", "standby_researcher"]
    assert rows["standby_researcher"][:3] == ["1", "standby_researcher", "done"]
    shown = format_status(Client(app).status(status.run_id))
    assert "researcher" in shown and "by its fallback standby_researcher" in shown
    assert "standing in for researcher" in shown
    data = Client(app).status(status.run_id).model_dump(mode="json")
    assert data["agents"]["researcher"]["served_by"] == "standby_researcher"
    assert data["agents"]["standby_researcher"]["stands_for"] == "researcher"


def test_an_open_breaker_without_fallback_fails_fast_naming_it(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {name: lonely-crew, llm_provider: scripted}
        agents:
          - id: researcher
            breaker: {failures: 1, cooldown: 10m}
            script: [{error: {status: 400, message: "researcher down"}}]
        """)
    first = run_crew(app, path)
    assert first.status == "failed" and "researcher down" in first.error
    assert first.breakers == {"researcher": pytest.approx(600, abs=30)}
    second = run_crew(app, path)
    assert second.status == "failed"
    assert "the breaker of agent 'researcher' is open after 1 consecutive failures" in second.error
    assert "no LLM call was made" in second.error
    # No LLM call was even numbered (each call gets an index before it is sent).
    assert not ledger.redis.exists(ledger.keys.calls(second.run_id, "researcher"))
    decision = next(e for e in ledger.events(second.run_id, count=None) if e["type"] == "decision")
    assert decision["reason"] == "its breaker is open: no attempt is made until the cool-down ends"


def test_a_probe_run_that_fails_opens_the_breaker_again(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {name: probe-crew, llm_provider: scripted}
        agents:
          - id: researcher
            breaker: {failures: 1, cooldown: 1s}
            fallback: [backup]
            script: [{error: {status: 400, message: "researcher down"}}]
          - {id: backup, standby: true, script: [{text: "backup"}]}
        """)
    first = run_crew(app, path)
    assert first.status == "succeeded" and first.breakers["researcher"] > 0
    deadline = time.monotonic() + 30
    while Client(app).status(first.run_id).breakers.get("researcher") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)  # the cool-down is a key's TTL: nothing to wait on but the clock
    probe = run_crew(app, path)
    assert probe.status == "succeeded" and probe.agents["researcher"].served_by == "backup"
    assert ledger.redis.exists(ledger.keys.calls(probe.run_id, "researcher"))  # it probed: one call
    failed = next(e for e in ledger.events(probe.run_id, count=None) if e["type"] == "agent_failed")
    assert "researcher down" in failed["error"]
    assert probe.breakers["researcher"] > 0  # open again, for another cool-down


def test_resume_runs_the_agent_again_and_its_fallback_as_its_next_attempt(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {name: resume-crew, llm_provider: scripted}
        agents:
          - id: researcher
            fallback: [backup]
            script: [{error: {status: 400, message: "down"}}, {error: {status: 400, message: "still down"}}]
          - {id: backup, standby: true, script: [{error: {status: 403, message: "no"}}, {text: "backup at last"}]}
          - {id: writer, depends_on: [researcher], script: [{text: "writer got <{input}>"}]}
        """)
    failed = run_crew(app, path)
    assert failed.status == "failed" and failed.agents["writer"].status == "skipped"
    client = Client(app)
    assert client.resume(failed.run_id) == ["researcher", "writer"]
    for _ in client.events(failed.run_id, follow=True, timeout=60):
        pass
    status = client.status(failed.run_id)
    assert status.status == "succeeded", status
    assert (status.agents["researcher"].attempt, status.agents["backup"].attempt) == (1, 1)
    assert status.agents["researcher"].served_by == "backup"
    assert status.output.endswith("Output of researcher (by backup):\nbackup at last>")
    handed = [(e["agent"], e["failed_attempt"]) for e in ledger.events(status.run_id, count=None)
              if e["type"] == "handed_over"]
    assert handed == [("researcher", 0), ("researcher", 1)]


def test_a_cancelled_run_does_not_hand_over(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {name: cancel-crew, llm_provider: scripted}
        agents:
          - id: researcher
            fallback: [backup]
            script: [{latency: 1s, text: never}]
          - {id: backup, standby: true, script: [{text: "backup"}]}
        """)
    client = Client(app)
    run_id = submit_loaded(app, load_crew(path))
    for event in client.events(run_id, follow=True, timeout=30):
        if event.type == "turn_started":
            assert client.cancel(run_id)
    deadline = time.monotonic() + 20
    while ledger.agent(run_id, "researcher").get("status") == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)  # the abandoned call returns within its 1 s latency
    status = client.status(run_id)
    assert status.status == "cancelled" and status.agents["researcher"].status == "cancelled"
    assert status.agents["backup"].status == "waiting" and status.agents["backup"].stands_for is None
    assert not [e for e in ledger.events(run_id, count=None) if e["type"] in ("handed_over", "decision")]


def test_a_stalled_run_sends_the_stand_in_again_not_nothing(app, ledger, tmp_path):
    # No worker: the run's messages wait in the queue; the ledger is set as a hand-over leaves it.
    run_id = submit_loaded(app, load_crew(write_crew(tmp_path, CREW)))
    ledger.update_agent(run_id, "planner", status=AgentStatus.SUCCEEDED, output="plan")
    ledger.update_agent(run_id, "researcher", status=AgentStatus.FAILED, error="down")
    ledger.update_agent(run_id, "standby_researcher", stands_for="researcher", fallback_of="researcher",
                        status=AgentStatus.RUNNING, turn=0)
    sent = restart_stalled(app, ledger, ledger.spec(run_id))
    assert sent == [TurnRef(run_id, "standby_researcher", 0, 0)]
    # A failure still waiting for the supervisor's decision is left alone.
    ledger.update_agent(run_id, "standby_researcher", status=AgentStatus.FAILED)
    assert restart_stalled(app, ledger, ledger.spec(run_id)) == []


def test_two_crews_with_the_default_name_do_not_share_a_breaker(app, ledger, worker, tmp_path):
    crew = """
        runtime: {llm_provider: scripted}
        agents:
          - id: researcher
            breaker: {failures: 1, cooldown: 10m}
            script: [{error: {status: 400, message: "%s"}}]
        """
    first = load_crew(write_crew(tmp_path, crew % "down", "a.yaml"))
    other = load_crew(write_crew(tmp_path, crew % "other", "b.yaml"))
    assert first.crew.runtime.name == other.crew.runtime.name == "crew"
    status = run_crew(app, tmp_path / "a.yaml")
    assert status.status == "failed" and set(status.breakers) == {"researcher"}
    assert set(breakers_of(ledger.redis, ledger.keys, first.crew)) == {"researcher"}
    assert breakers_of(ledger.redis, ledger.keys, other.crew) == {}
    again = run_crew(app, tmp_path / "b.yaml")  # its researcher is asked: its own error, not the breaker's
    assert "other" in again.error and "breaker" not in again.error
