"""The breaker per agent on a fleet (a `crewq worker` and a `crewq supervisor` process): five failed
runs open it, the next run's researcher makes no LLM call and its standby does the work, and after
the cool-down one probe run closes it."""

from __future__ import annotations

import os
import signal
import time

from crewq.config.loader import load_crew
from crewq.scheduler.metrics import registry_for
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.agent_breaker import crew_identity

from conftest import start_supervisor
from fakes.llm_servers import FakeLLMServer, Reply, openai_completion, openai_error
from helpers import write_crew

COOLDOWN = 8.0  # long enough for the sixth run to start inside it on a loaded machine

CREW = """
    runtime: {{name: breaker-crew, llm_provider: scripted}}
    task: {{input: tides}}
    agents:
      - id: researcher
        llm: {{provider: openai-compatible, model: fake-model, base_url: "{url}/v1"}}
        fallback: [standby_researcher]
        breaker: {{failures: 5, cooldown: {cooldown}s}}
      - {{id: standby_researcher, standby: true, script: [{{text: standby notes}}]}}
      - {{id: writer, depends_on: [researcher], script: [{{text: "writer got <{{input}}>"}}]}}
    """


def run_once(app, path, client):
    run_id = submit_loaded(app, load_crew(path))
    for _ in client.events(run_id, follow=True, timeout=90):
        pass
    return client.status(run_id)


def breaker_gauge(ledger) -> dict[tuple[str, str], float]:
    found = {}
    for family in registry_for(ledger).collect():
        if family.name == "crewq_agent_breaker_open":
            found = {(s.labels["crew"], s.labels["digest"], s.labels["agent"]): s.value for s in family.samples}
    return found


def test_the_agent_breaker_opens_sends_turns_to_the_fallback_and_a_probe_closes_it(app, worker_processes,
                                                                                 redis_url, tmp_path):
    ledger, client = app.ledger, Client(app)
    supervisor = None
    with FakeLLMServer() as server:
        server.always(Reply(status=400, body=openai_error("invalid_request_error", message="researcher refused")))
        path = write_crew(tmp_path, CREW.format(url=server.url, cooldown=COOLDOWN))
        try:
            worker_processes.start("w1")
            supervisor = start_supervisor(redis_url, "sup", tmp_path)
            calls, statuses = [], []
            for _ in range(6):
                statuses.append(run_once(app, path, client))
                calls.append(len(server.received))
            print("requests to the researcher's provider after each run:", calls)
            sixth = statuses[-1]
            log = (tmp_path / "sup.log").read_text()[-3000:]
            assert [s.status for s in statuses] == ["succeeded"] * 6, (statuses[-1], log)
            # Five runs, one request each (a 400 is permanent: no retry, no restart); then none.
            assert calls == [1, 2, 3, 4, 5, 5], calls
            for status in statuses:
                assert status.output == "writer got <Task:\ntides\n\nOutput of researcher (by standby_researcher):" \
                                        "\nstandby notes>"
            failed = next(e for e in ledger.events(sixth.run_id, count=None) if e["type"] == "agent_failed")
            assert "the breaker of agent 'researcher' is open after 5 consecutive failures" in failed["error"]
            handed = [e for e in ledger.events(sixth.run_id, count=None) if e["type"] == "handed_over"]
            assert [(e["fallback"], e["reason"]) for e in handed] == [
                ("standby_researcher", "its breaker is open: no attempt is made until the cool-down ends")]
            # Open: listed by status (with the cool-down left) and exported in the metrics.
            assert 0 < sixth.breakers["researcher"] <= COOLDOWN
            assert breaker_gauge(ledger) == {("breaker-crew", crew_identity(load_crew(path).crew).split("#")[1],
                                              "researcher"): 1.0}

            # The cool-down ends (the open key expires in Redis); the researcher's provider is back.
            deadline = time.monotonic() + COOLDOWN + 30
            while client.status(sixth.run_id).breakers.get("researcher") is not None:
                assert time.monotonic() < deadline, "the breaker stayed open past its cool-down"
                time.sleep(0.2)  # the cool-down is a key's TTL: nothing to wait on but the clock
            assert client.status(sixth.run_id).breakers == {"researcher": None}  # half-open: the next run probes
            server.always(Reply(body=openai_completion(text="researcher is back")))
            probe = run_once(app, path, client)
            assert probe.status == "succeeded", probe
            assert len(server.received) == 6  # the probe: one call
            print("after the probe run:", len(server.received), "requests; breakers:", probe.breakers)
            assert probe.output == "writer got <Task:\ntides\n\nOutput of researcher:\nresearcher is back>"
            assert probe.agents["researcher"].served_by is None
            assert probe.breakers == {} and breaker_gauge(ledger) == {}
            assert not [e for e in ledger.events(probe.run_id, count=None) if e["type"] == "handed_over"]
        finally:
            if supervisor is not None and supervisor.poll() is None:
                os.killpg(supervisor.pid, signal.SIGTERM)
                supervisor.wait(15)
