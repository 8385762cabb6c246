"""Crews run end to end on real Celery workers over a real redis-server."""

from __future__ import annotations

import pytest
import redis

from helpers import run_crew, write_crew

FOUR_TOOLS_CREW = """
runtime: {name: fan, llm_provider: scripted}
task: {input: "the original task"}
tools:
  - {name: echo, python: "fakes.sample_tools:meet_then_echo"}
agents:
  - id: a
    script: [{text: "A-out"}]
  - id: b
    depends_on: [a]
    tools: [echo]
    script:
      - tool_calls:  # each waits for all four to be running, then finishes in its own time
          - {name: echo, arguments: {text: "0", parties: 4, delay: 0.6}}
          - {name: echo, arguments: {text: "1", parties: 4, delay: 0.4}}
          - {name: echo, arguments: {text: "2", parties: 4, delay: 0.2}}
          - {name: echo, arguments: {text: "3", parties: 4, delay: 0.5}}
      - text: "B saw {tool_results}"
  - id: c
    depends_on: [a]
    script: [{text: "C-out"}]
  - id: d
    depends: [b, c]
    script: [{text: "D got: {input}"}]
"""


def events_of(ledger, run_id, kind):
    return [e for e in ledger.events(run_id, count=None) if e["type"] == kind]


def test_three_waves_fan_in_and_four_parallel_tools(app, ledger, worker_processes, tmp_path):
    worker_processes.start("w1", concurrency=8)
    status = run_crew(app, write_crew(tmp_path, FOUR_TOOLS_CREW), timeout=60)

    assert status.status == "succeeded", status
    assert status.waves == [["a"], ["b", "c"], ["d"]]
    results = [e for e in events_of(ledger, status.run_id, "tool_result") if e["agent"] == "b"]
    assert sorted(e["index"] for e in results) == [0, 1, 2, 3]
    # The four tool tasks overlap: each got past a barrier that only four calls running at once
    # pass, so every one started (its tool_call event) before any one finished (its tool_result).
    assert not any(e["is_error"] for e in results), results
    kinds = [e["type"] for e in ledger.events(status.run_id, count=None)
             if e["agent"] == "b" and e["type"] in ("tool_call", "tool_result")]
    assert kinds == ["tool_call"] * 4 + ["tool_result"] * 4
    # Their results reach the model in the order it asked, whatever order they finished in.
    assert ledger.agent(status.run_id, "b")["output"] == "B saw echo:0|echo:1|echo:2|echo:3"
    # The fan-in agent gets the original task and every upstream output, labelled.
    assert status.output == ("D got: Task:\nthe original task\n\nOutput of b:\nB saw echo:0|echo:1|echo:2|echo:3"
                                "\n\nOutput of c:\nC-out")


def test_every_key_of_a_run_expires_though_ttls_are_set_once(app, ledger, worker, tmp_path):
    status = run_crew(app, write_crew(tmp_path, FOUR_TOOLS_CREW), timeout=60)

    assert status.status == "succeeded", status
    keys = list(ledger.redis.scan_iter(match=ledger.keys.run_pattern(status.run_id)))
    assert any(k.endswith(":results") for k in keys) and any(k.endswith(":hosts") for k in keys)
    assert {k: ledger.redis.ttl(k) for k in keys if ledger.redis.ttl(k) <= 0} == {}
    # An event for a run that is gone is dropped, not left in a stream that would never expire.
    ledger.event("gone", "tool_call", "a", turn=0, index=0, name="t")
    assert not ledger.redis.exists(ledger.keys.events("gone"))


def test_two_workers_share_one_wave(app, ledger, worker_processes, tmp_path):
    nodes = {worker_processes.start("w1", concurrency=1), worker_processes.start("w2", concurrency=1)}
    agents = "\n".join(f"  - {{id: p{i}, script: [{{latency: 0.4s, text: p{i}}}]}}" for i in range(4))
    path = write_crew(tmp_path, "runtime: {llm_provider: scripted}\nagents:\n" + agents + "\n")
    status = run_crew(app, path, timeout=60)

    assert status.status == "succeeded"
    hosts = {state.hostname for state in status.agents.values()}
    assert hosts == nodes
    assert "## p0\n\np0" in status.output and "## p3\n\np3" in status.output


def test_secrets_never_enter_redis(app, ledger, worker, tmp_path, monkeypatch, redis_url):
    secret = "sk-test-5f3c9a1e7d2b"
    monkeypatch.setenv("CREWQ_TEST_SECRET", secret)
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted, api_key: "env:CREWQ_TEST_SECRET"}
        tools:
          - {name: keylen, python: "fakes.sample_tools:key_length", api_key: "env:CREWQ_TEST_SECRET"}
        agents:
          - id: a
            tools: [keylen]
            script:
              - tool_calls: [{name: keylen}]
              - text: "{tool_results}"
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded"
    assert status.output == f"key has {len(secret)} characters"  # resolved inside the worker

    client = redis.Redis.from_url(redis_url)
    found = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            blobs = [client.get(key)]
        elif kind == "hash":
            blobs = list(client.hgetall(key).values())
        elif kind == "list":
            blobs = client.lrange(key, 0, -1)
        elif kind == "set":
            blobs = list(client.smembers(key))
        elif kind == "zset":
            blobs = client.zrange(key, 0, -1)
        elif kind == "stream":
            blobs = [v for _, fields in client.xrange(key) for v in fields.values()]
        else:
            blobs = []
        if any(secret.encode() in blob for blob in blobs + [key]):
            found.append(key)
    assert client.dbsize() > 10  # the scan saw the run's keys, Celery's results and the queues
    assert found == []


def test_transient_error_is_retried_inside_the_turn(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            script:
              - error: {status: 429, retry_after: 0.2, message: slow down}
              - text: fine now
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded" and status.output == "fine now"
    retries = events_of(ledger, status.run_id, "llm_retry")
    assert [r["countdown"] for r in retries] == [0.2]
    assert status.agents["a"].attempt == 0


def test_the_wait_before_a_retry_is_capped_by_the_agents_max_backoff(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            max_backoff: 300ms
            script:
              - error: {status: 529, retry_after: 3600, message: overloaded}
              - text: fine now
        """)
    status = run_crew(app, path)
    assert status.output == "fine now"
    assert [r["countdown"] for r in events_of(ledger, status.run_id, "llm_retry")] == [0.3]


def test_retries_are_bounded_by_max_retries(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            max_restarts: 0
            max_retries: 1
            script:
              - error: {status: 503, retry_after: 0.05}
              - error: {status: 503, retry_after: 0.05}
              - text: never reached
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "after 2 tries" in status.error


def test_a_crash_fails_the_run_naming_the_agent_and_skips_dependents(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, max_restarts: 0, script: [{error: crash}]}
          - {id: b, depends_on: [a], script: [{text: x}]}
          - {id: c, depends_on: [b], script: [{text: x}]}
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert status.error == "agent a failed after 1 attempt: scripted: scripted crash [type=crash]"
    assert status.agents["b"].status == "skipped" and status.agents["c"].status == "skipped"


def test_an_exhausted_script_fails_loudly(app, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            max_restarts: 0
            tools: [list_files]
            script: [{tool_calls: [{name: list_files}]}]
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "script for agent 'a' ran out: call 2 asked, 1 scripted" in status.error


def test_duplicate_and_total_tool_call_limits_tell_the_model(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: echo, python: "fakes.sample_tools:slow_echo"}
        agents:
          - id: a
            tools: [echo]
            max_duplicate_tool_calls: 1
            max_total_tool_calls: 2
            script:
              - tool_calls:
                  - {name: echo, arguments: {text: x, delay: 0}}
                  - {name: echo, arguments: {text: x, delay: 0}}
                  - {name: echo, arguments: {text: y, delay: 0}}
                  - {name: echo, arguments: {text: z, delay: 0}}
                  - {name: nope, arguments: {}}
              - text: "{tool_results}"
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded"
    parts = status.output.split("|")
    assert parts[0] == "echo:x"
    assert parts[1].startswith("skipped: this exact call was already made 1 times")
    assert parts[2] == "echo:y"
    assert parts[3].startswith("skipped: the limit of 2 tool calls for this agent is reached")
    assert parts[4].startswith("unknown tool 'nope'; the tools you have: echo")
    assert len(events_of(ledger, status.run_id, "tool_call")) == 2


def test_max_turns_stops_a_model_that_keeps_calling_tools(app, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            max_restarts: 0
            tools: [list_files]
            max_turns: 2
            script:
              - tool_calls: [{name: list_files}]
              - tool_calls: [{name: list_files, arguments: {recursive: true}}]
              - text: too late
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "max_turns (2) reached" in status.error


def test_bad_tool_arguments_go_back_to_the_model(app, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: echo, python: "fakes.sample_tools:slow_echo"}
        agents:
          - id: a
            tools: [echo]
            script:
              - tool_calls: [{name: echo, arguments: {text: 5}}]
              - text: "{tool_results}"
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded"
    assert status.output == "arguments do not fit the schema of echo: text: 5 is not of type 'string'"


@pytest.mark.parametrize("limits, expected", [
    ("agents:\n  - id: a\n    max_restarts: 0\n    timeout: 0.3s\n", "agent timeout (0.3s) exceeded"),
    ("task: {max_duration: 0.3s}\nagents:\n  - id: a\n    max_restarts: 0\n", "the run's max_duration (0.3s) is exceeded"),
])
def test_deadlines_end_a_slow_agent(app, worker, tmp_path, limits, expected):
    path = write_crew(tmp_path, "runtime: {llm_provider: scripted}\n" + limits + """\
    tools: [list_files]
    script:
      - {latency: 1s, tool_calls: [{name: list_files}]}
      - text: never
""")
    status = run_crew(app, path)
    assert status.status == "failed"
    assert expected in status.error


def test_missing_env_variable_fails_the_agent_by_name(app, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted, api_key: "env:CREWQ_SURELY_UNSET_VAR"}
        agents:
          - {id: a, max_restarts: 0, script: [{text: x}]}
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "CREWQ_SURELY_UNSET_VAR is not set" in status.error
    assert "runtime.api_key" in status.error


def test_an_agent_with_a_queue_runs_on_the_workers_of_that_queue(app, worker, worker_processes, tmp_path):
    gpu = worker_processes.start("gpu", concurrency=2, env={}, queues="gpu")
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: local, script: [{text: a}]}
          - id: heavy
            queue: gpu
            tools: [list_files]
            script: [{tool_calls: [{name: list_files}]}, {text: b}]
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded"
    assert status.agents["heavy"].hostname == gpu
    assert status.agents["local"].hostname != gpu


def test_a_redis_blip_in_a_turn_or_a_tool_call_sends_it_back_to_run_again(app, ledger, worker, tmp_path,
                                                                          monkeypatch):
    from crewq.workers.ledger.store import Ledger
    real_reply, real_result = Ledger.record_call, Ledger.record_tool_result
    blips = {"reply": 1, "result": 1}

    def flaky(kind, real):
        def method(self, *args, **kwargs):
            if blips[kind]:
                blips[kind] -= 1
                raise redis.ConnectionError("Connection closed by server.")
            return real(self, *args, **kwargs)
        return method
    import crewq.workers.app
    pauses = []
    monkeypatch.setattr(crewq.workers.app, "pause", pauses.append)
    monkeypatch.setattr(Ledger, "record_call", flaky("reply", real_reply))
    monkeypatch.setattr(Ledger, "record_tool_result", flaky("result", real_result))
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            tools: [list_files]
            script:
              - {tool_calls: [{name: list_files}]}
              - {text: "listed: {tool_results}"}
        """)
    status = run_crew(app, path)
    assert blips == {"reply": 0, "result": 0}
    assert pauses == [crewq.workers.app.OUTAGE_PAUSE] * 2  # each paused before its message went back
    assert status.status == "succeeded", status
    assert status.output.startswith("listed: ")
    # Sent back by the worker itself: no failure, no decision, and no stall repair was needed.
    assert not [e for e in ledger.events(status.run_id, count=None)
                if e["type"] in ("agent_failed", "decision", "requeued")]
