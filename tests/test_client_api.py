"""The client API's typed answers: run states, recent runs, events as models (and their JSON)."""

from __future__ import annotations

import json
import typing

import pytest
from click.testing import CliRunner

from crewq.config.states import AgentStatus, RunStatus
from crewq.scheduler.cli import main
from crewq.scheduler.runs import Client
from crewq.workers.ledger import events
from crewq.workers.ledger.state import RunState

from helpers import run_crew, write_crew

TWO_AGENTS = """
runtime: {name: pair, llm_provider: scripted}
tools:
  - {name: echo, python: "fakes.sample_tools:slow_echo"}
agents:
  - {id: a, tools: [echo], script: [{tool_calls: [{name: echo, arguments: {text: hi, delay: 0}}]}, {text: first}]}
  - {id: b, depends_on: [a], script: [{text: second}]}
"""


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def test_state_from_ledger_hashes_is_typed():
    run = {"status": "failed", "name": "c", "submitted_at": "1764600000.25", "started_at": "1764600000.5",
           "finished_at": "1764600003.75", "waves": '[["a"], ["b"]]', "agents": '["a", "b"]', "error": "boom",
           "failed_agent": "a", "restarts": "2", "input_tokens": "12", "output_tokens": "3", "llm_calls": "2",
           "cost_usd": "0.0125", "trace_id": ""}
    agents = {"a": {"status": "failed", "attempt": "2", "turn": "1", "hostname": "w1", "input_tokens": "12",
                    "restart_times": "[1764600001.0, 1764600002.0]", "error": "boom", "output": ""},
              "b": {"status": "skipped", "attempt": "0", "error": "a failed"}}
    state = RunState.from_ledger("r1", run, agents)
    assert state.status is RunStatus.FAILED and state.waves == [["a"], ["b"]]
    assert (state.submitted_at, state.finished_at, state.restarts) == (1764600000.25, 1764600003.75, 2)
    assert state.usage.input_tokens == 12 and state.usage.cost_usd == 0.0125 and state.trace_id is None
    a, b = state.agents["a"], state.agents["b"]
    assert a.status is AgentStatus.FAILED and (a.attempt, a.turns) == (2, 2) and a.output == ""
    assert a.restart_times == [1764600001.0, 1764600002.0] and a.usage.input_tokens == 12
    assert b.status is AgentStatus.SKIPPED and b.turns == 0 and b.output is None and b.started_at is None
    dumped = state.model_dump(mode="json")
    assert dumped["status"] == "failed" and dumped["agents"]["a"]["usage"]["input_tokens"] == 12
    assert RunState.model_validate(dumped) == state  # the JSON shape reads back as the model


def test_status_json_and_run_state_have_numbers_as_numbers(worker, redis_url, tmp_path):
    status = run_crew(worker, write_crew(tmp_path, TWO_AGENTS))
    assert status.status == RunStatus.SUCCEEDED, status
    assert status.agents["a"].turns == 2 and status.agents["b"].turns == 1
    shown = CliRunner().invoke(main, ["status", status.run_id, "--json"], env={"CREWQ_REDIS_URL": redis_url})
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["run_id"] == status.run_id and data["name"] == "pair" and data["status"] == "succeeded"
    assert data["output"] == "second" and data["waves"] == [["a"], ["b"]] and data["error"] is None
    assert isinstance(data["started_at"], float) and data["finished_at"] >= data["started_at"]
    assert is_int(data["usage"]["llm_calls"]) and data["usage"]["llm_calls"] == 3
    assert list(data["agents"]) == ["a", "b"]
    for agent in data["agents"].values():
        assert agent["status"] == "succeeded"
        assert all(is_int(agent[k]) for k in ("attempt", "turns"))
        assert all(is_int(agent["usage"][k]) for k in ("input_tokens", "output_tokens", "llm_calls"))
    assert (data["agents"]["a"]["turns"], data["agents"]["a"]["attempt"]) == (2, 0)


def test_runs_lists_recent_runs_newest_first(worker, redis_url, tmp_path):
    client = Client(worker)
    first = run_crew(worker, write_crew(tmp_path, TWO_AGENTS))
    second = client.submit(write_crew(tmp_path, TWO_AGENTS.replace("name: pair", "name: later"), "later.yaml"))
    client.wait(second, timeout=30)
    listed = client.runs(limit=5)
    assert [r.run_id for r in listed] == [second, first.run_id]
    assert [(r.name, r.status) for r in listed] == [("later", RunStatus.SUCCEEDED), ("pair", RunStatus.SUCCEEDED)]
    assert all(r.started_at and r.finished_at and r.finished_at >= r.started_at for r in listed)
    assert [r.run_id for r in client.runs(limit=1)] == [second]

    env = {"CREWQ_REDIS_URL": redis_url}
    as_json = CliRunner().invoke(main, ["runs", "--json", "--limit", "2"], env=env)
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    assert [(r["run_id"], r["name"], r["status"]) for r in rows] == [(second, "later", "succeeded"),
                                                                    (first.run_id, "pair", "succeeded")]
    assert set(rows[0]) == {"run_id", "name", "status", "submitted_at", "started_at", "finished_at", "error"}
    text = CliRunner().invoke(main, ["runs"], env=env).output.splitlines()
    assert text[1].startswith(f"{second}  later") and text[2].startswith(f"{first.run_id}  pair")


def test_the_runs_index_forgets_runs_past_the_retention(worker, tmp_path):
    ledger = Client(worker).ledger
    ledger.redis.zadd(ledger.keys.runs, {"ancient": 1.0})  # submitted in 1970: long past any retention
    run_id = Client(worker).submit(write_crew(tmp_path, TWO_AGENTS))
    assert ledger.redis.zscore(ledger.keys.runs, "ancient") is None
    assert ledger.redis.zscore(ledger.keys.runs, run_id) is not None
    assert 0 < ledger.redis.ttl(ledger.keys.runs) <= ledger.ttl


def test_events_read_back_as_their_models(worker, redis_url, tmp_path):
    status = run_crew(worker, write_crew(tmp_path, TWO_AGENTS))
    read = list(Client(worker).events(status.run_id))
    assert isinstance(read[0], events.RunSubmitted) and read[0].waves == [["a"], ["b"]]
    assert isinstance(read[-1], events.RunFinished) and read[-1].status is RunStatus.SUCCEEDED
    assert all(type(e) is not events.Event for e in read), [e.type for e in read if type(e) is events.Event]
    calls = [e for e in read if isinstance(e, events.LLMCall)]
    assert [c.tool_calls for c in calls if c.agent == "a"] == [["echo"], []]
    result = next(e for e in read if isinstance(e, events.ToolResult))
    assert (result.agent, result.name, result.is_error, result.index) == ("a", "echo", False, 0)

    printed = CliRunner().invoke(main, ["events", status.run_id, "--json"], env={"CREWQ_REDIS_URL": redis_url})
    lines = [json.loads(line) for line in printed.output.splitlines()]
    assert [line["type"] for line in lines] == [e.type for e in read]
    succeeded = next(line for line in lines if line["type"] == "agent_succeeded")
    assert set(succeeded) == {"id", "type", "agent", "ts", "turns", "attempt", "seconds", "stands_for"}
    assert is_int(succeeded["turns"]) and isinstance(succeeded["ts"], float)


def test_an_event_of_an_unknown_type_still_reads(worker, redis_url, tmp_path):
    status = run_crew(worker, write_crew(tmp_path, TWO_AGENTS))
    ledger = Client(worker).ledger
    ledger.event(status.run_id, "from_the_future", "a", colour="teal", count=3)
    # A known type with fields this version does not expect (another crewq's writer) reads too.
    ledger.redis.xadd(ledger.keys.events(status.run_id),
                      {"type": "agent_failed", "agent": "b", "ts": "1.5", "data": json.dumps({"why": "later"})})
    future, odd = list(Client(worker).events(status.run_id))[-2:]
    assert type(future) is events.Event and future.type == "from_the_future" and future.agent == "a"
    assert future.model_dump()["colour"] == "teal" and future.model_dump()["count"] == 3
    assert type(odd) is events.Event and odd.type == "agent_failed" and odd.model_dump()["why"] == "later"
    printed = CliRunner().invoke(main, ["events", status.run_id, "--json"], env={"CREWQ_REDIS_URL": redis_url})
    assert json.loads(printed.output.splitlines()[-2])["colour"] == "teal"


def test_a_known_event_written_without_its_fields_is_refused(ledger):
    with pytest.raises(ValueError, match="turn_started.host"):
        ledger.event("r1", "turn_started", "a", turn=0)
    assert ledger.events("r1") == []


def test_every_event_model_is_in_the_union_under_its_own_type():
    members = [typing.get_args(m) for m in typing.get_args(typing.get_args(events.AnyEvent)[0])]
    tags = {meta.tag: model for model, meta in members}
    assert tags.pop("other") is events.Event
    assert all(model.model_fields["type"].default == tag for tag, model in tags.items())
    def leaves(cls):
        return [c for sub in cls.__subclasses__() for c in (leaves(sub) or [sub])]
    assert tags == events.KNOWN and sorted(tags.values(), key=str) == sorted(leaves(events.Event), key=str)
