"""A provider that needs a model gets one, or the crew does not validate; a provider's own
configuration error (no model, no base_url once `env:` is resolved) fails the agent at once."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from crewq.scheduler.cli import main
from crewq.workers.llm.chain import MODEL_REQUIRED

from fakes.llm_servers import FakeLLMServer
from helpers import run_crew, write_crew


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "ollama", "openai", "openai-compatible"])
def test_validate_and_plan_name_the_missing_model(provider, tmp_path):
    assert provider in MODEL_REQUIRED  # the worker's check (llm_chain) and validate's are one list
    path = write_crew(tmp_path, f"""
        runtime: {{llm_provider: {provider}, base_url: "https://llm.example/v1"}}
        agents:
          - id: a
          - id: b
            llm: {{model: m, fallback: [{{provider: {provider}}}]}}
        """)
    for command in ("validate", "plan"):
        result = CliRunner().invoke(main, [command, str(path)])
        assert result.exit_code == 2, (command, result.output)  # a crew file that does not validate
        assert f"runtime.model: agent 'a': the {provider} provider needs a model" in result.output, result.output
        assert f"agents[1].llm.fallback[0].model: agent 'b': the {provider} provider needs a model" in result.output


def test_a_providers_configuration_error_is_permanent(app, worker, tmp_path):
    with FakeLLMServer() as llm:
        gemini = run_crew(app, write_crew(tmp_path, f"""
            runtime: {{llm_provider: gemini, model: "env:CREWQ_T_NO_MODEL:-", api_key: k, base_url: "{llm.url}"}}
            agents: [{{id: a}}]
            """, "gemini.yaml"))
        compatible = run_crew(app, write_crew(tmp_path, """
            runtime: {llm_provider: openai-compatible, model: m, base_url: "env:CREWQ_T_NO_URL:-"}
            agents: [{id: a}]
            """, "compatible.yaml"))
        assert llm.received == []
    for status, reason in [(gemini, "the gemini provider needs a model"), (compatible, "openai-compatible needs base_url")]:
        agent = status.agents["a"]
        assert status.status == "failed" and reason in (agent.error or ""), status
        assert agent.attempt == 0, ("a configuration error is not restarted", agent)
