"""Run budgets from the crew file: task.max_tokens and task.max_cost stop the next LLM call."""

from __future__ import annotations

from crewq.config.schema import TaskSpec
from crewq.scheduler.commands import format_status
from crewq.scheduler.runs import Client
from crewq.workers.budgets import exhausted

from helpers import run_crew, write_crew


def test_max_tokens_stops_the_run_before_its_next_call_and_keeps_finished_outputs(worker, ledger, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        task: {input: go, max_tokens: 100}
        agents:
          - {id: first, script: [{text: "first's work", input_tokens: 80, output_tokens: 30}]}
          - {id: second, depends_on: [first], script: [{text: "never asked"}]}
        """)
    status = run_crew(worker, path)
    print(status.error)
    assert status.status == "failed"
    assert "budget task.max_tokens (100) is spent: 110 tokens used" in status.error
    assert status.agents["first"].status == "succeeded"
    assert status.agents["first"].output == "first's work"  # kept
    assert status.agents["second"].status == "failed"
    calls = [e for e in ledger.events(status.run_id, count=None) if e["type"] == "llm_call"]
    assert [e["agent"] for e in calls] == ["first"]  # the second agent's call never started
    decisions = [e for e in ledger.events(status.run_id, count=None) if e["type"] == "decision"]
    assert [d["action"] for d in decisions] == ["give_up"]  # no restart: a restart cannot unspend
    assert Client(worker).status(status.run_id).model_dump(mode="json")["budgets"] == {"max_tokens": 100}  # --json
    shown = format_status(Client(worker).status(status.run_id))
    print(shown)
    assert "budget: 110 of 100 tokens (spent)" in shown.splitlines()


def test_max_cost_names_the_budget_and_what_was_spent():
    task = TaskSpec(max_cost=0.5, max_tokens=10_000)
    assert exhausted(task, {"input_tokens": "10", "cost_usd": "0.2"}) is None
    assert exhausted(task, {"cost_usd": "0.5001", "unpriced_calls": "2"}) == (
        "budget task.max_cost ($0.5) is spent: $0.5001 used; 2 calls to models without a price not counted")
    assert exhausted(task, {"input_tokens": "9000", "output_tokens": "1000"}) == (
        "budget task.max_tokens (10000) is spent: 10000 tokens used")
