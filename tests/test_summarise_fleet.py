"""The summarise tool's LLM call takes an agent's path: on a default-policy fleet the worker's key goes
only where the policy binds it and nothing reaches a private address; its tokens count as the run's and
the run's budget stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crewq.config.policy import Policy

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion
from helpers import run_crew, write_crew

KEY = "sk-summarise-secret-0123456789"


def crew(llm_url: str, api_key: str = "env:OPENAI_API_KEY", task: str = "") -> str:
    return f"""
        runtime: {{llm_provider: scripted}}
        {task}
        tools:
          - name: summarise
            api_key: {api_key}
            extra: {{provider: openai, model: gpt-4o, base_url: "{llm_url}/v1"}}
        agents:
          - id: a
            tools: [summarise]
            script:
              - tool_calls: [{{name: summarise, arguments: {{text: "A long text about tides and the moon."}}}}]
              - text: "got {{tool_results}}"
        """


@pytest.fixture
def llm():
    with FakeLLMServer() as server:
        server.default = Reply(body=openai_completion(text="Tides follow the moon.", usage=(40, 6)))
        yield server


def test_on_a_default_policy_fleet_summarise_sends_the_key_nowhere_else(app, supervisor, worker_processes,
                                                                        tmp_path: Path, llm):
    worker_processes.start("fleet", env={"CREWQ_POLICY": "", "OPENAI_API_KEY": KEY, "FAKE_KEY": "x"})
    bound = run_crew(app, write_crew(tmp_path, crew(llm.url), "bound.yaml"))
    # a key of the submitter's own (no secret of the worker's): still no private address
    private = run_crew(app, write_crew(tmp_path, crew(llm.url, api_key="sk-my-own"), "private.yaml"))
    assert bound.status == "succeeded", bound  # the refusal goes to the model as the tool's error
    port = llm.url.rsplit(":", 1)[1]
    bound_to = ", ".join(Policy().secrets["OPENAI_API_KEY"])  # the default binding (a public host, never reached)
    assert f"env:OPENAI_API_KEY may be sent to {bound_to}, not to http://127.0.0.1:{port}" in bound.output, \
        bound.output
    assert "allow_private_addresses" in private.output, private.output
    assert llm.received == []  # neither the key nor the request left the worker
    assert KEY not in str(bound) + str(private)


def test_summarises_tokens_count_as_the_runs_and_its_budget_stops_it(app, worker, tmp_path: Path, llm):
    done = run_crew(app, write_crew(tmp_path, crew(llm.url, api_key="sk-my-own"), "usage.yaml"))
    assert done.status == "succeeded" and "Tides follow the moon." in done.output, done
    agent = done.agents["a"].usage
    assert agent.llm_calls == 3 and agent.input_tokens >= 40 and agent.output_tokens >= 6  # 2 turns + the summary
    assert done.usage.llm_calls == 3 and done.usage.input_tokens == agent.input_tokens
    # The first turn's own call spends the budget: the summary that turn asks for is refused, unsent.
    spent = run_crew(app, write_crew(tmp_path, crew(llm.url, api_key="sk-my-own", task="task: {max_tokens: 10}"),
                                     "budget.yaml"))
    result, _ = app.ledger.tool_call_state(spent.run_id, "a", 0, 0, 0)
    assert result["is_error"] and "budget task.max_tokens (10) is spent" in result["content"], result
    assert len(llm.received) == 1  # only the first run's summary
