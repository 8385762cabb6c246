"""Bad input gets a clear error naming the file, the line, the key; good input loads."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from crewq.config.durations import parse_duration
from crewq.config.envref import resolve
from crewq.config.errors import ConfigError, CycleError, MissingEnvError
from crewq.config.loader import load_crew, load_crew_text
from crewq.scheduler.cli import main
from crewq.scheduler.validate import check

from helpers import write_crew


def error_of(tmp_path, text: str) -> str:
    path = write_crew(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        check(path)
    return str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    message = error_of(tmp_path, """
        agents:
          - id: a
            role: [unclosed
        """)
    assert "crew.yaml:5" in message and "malformed YAML" in message


def test_typo_gets_the_nearest_key(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            dependz_on: []
            script: [{text: hi}]
        """)
    assert "crew.yaml:5: agents[0].dependz_on: unknown key 'dependz_on'" in message
    assert "did you mean 'depends_on'?" in message


def test_duplicate_agent_ids(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, script: [{text: x}]}
          - {id: a, script: [{text: y}]}
        """)
    assert "crew.yaml:5: agents[1].id: duplicate agent id 'a' (first at agents[0])" in message


def test_a_duplicate_key_is_named_not_kept_silently(tmp_path):
    message = error_of(tmp_path, """
        runtime: {name: mine, llm_provider: scripted, env_file: .env}
        agents:
          - {id: a, script: [{text: x}]}
        runtime: {llm_provider: anthropic}
        """)
    assert "crew.yaml:5: duplicate key 'runtime' (lines 2 and 5)" in message


def test_unknown_dependency_suggests_an_agent(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: research, script: [{text: x}]}
          - id: write
            depends: [reserch]
            script: [{text: y}]
        """)
    assert "crew.yaml:6: agents[1].depends[0]: agent 'write' depends on unknown agent 'reserch'" in message
    assert "did you mean 'research'?" in message


def test_cycle_names_only_the_agents_on_it(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: start, script: [{text: x}]}
          - {id: a, depends_on: [start, c], script: [{text: x}]}
          - {id: b, depends_on: [a], script: [{text: x}]}
          - {id: c, depends_on: [b], script: [{text: x}]}
        """)
    with pytest.raises(CycleError) as info:
        check(path)
    assert info.value.cycle == ["a", "c", "b", "a"]
    assert "dependency cycle: a → c → b → a" in str(info.value)
    assert "crew.yaml:5: agents[1].depends_on" in str(info.value)
    assert "start" not in str(info.value)


def test_unknown_tool(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, tools: [read_fil], script: [{text: x}]}
        """)
    assert "crew.yaml:4: agents[0].tools[0]: agent 'a' uses unknown tool 'read_fil'" in message
    assert "did you mean 'read_file'?" in message


def test_tool_settings_that_cannot_work_are_named_before_anything_runs(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: web_search, extra: {backend: bing}}
          - {name: mcp, extra: {server_name: docs}}
          - {name: shout, python: "no_colon_here"}
        agents:
          - {id: a, tools: [web_search, docs, shout], script: [{text: x}]}
        """)
    assert "crew.yaml:4: tools[0]: tool 'web_search': unknown web_search backend 'bing'" in message
    assert "crew.yaml:5: tools[1]: tool 'mcp': an MCP server needs extra.server_url or extra.command" in message
    assert "crew.yaml:6: tools[2]: tool 'shout': python tool 'no_colon_here' must look like" in message


def test_a_tool_timeout_must_be_a_duration(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: read_file, extra: {timeout: soon}}
        agents:
          - {id: a, tools: [read_file], script: [{text: x}]}
        """)
    assert "crew.yaml:4: tools[0]: tool 'read_file': timeout 'soon': bad duration 'soon'" in message


def test_env_providers_are_left_to_the_worker(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: "env:CREWQ_T_PRIMARY:-scripted"}
        agents:
          - id: a
            script: [{text: x}]
            llm: {fallback: [{provider: "env:CREWQ_T_FALLBACK", model: m}]}
        """)
    _, waves = check(path)
    assert waves == [["a"]]


def test_unknown_fallback_provider(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            script: [{text: x}]
            llm: {fallback: [{provider: olama, model: m}]}
        """)
    assert "agents[0].llm.fallback[0].provider: unknown LLM provider 'olama' in agent 'a'" in message
    assert "did you mean 'ollama'?" in message


def test_unknown_provider(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: anthropc}
        agents:
          - {id: a}
        """)
    assert "crew.yaml:2: runtime.llm_provider: unknown LLM provider 'anthropc'" in message


def test_scripted_agent_without_script(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a}
        """)
    assert "agent 'a' uses the scripted provider but has no script" in message


@pytest.mark.parametrize("value, problem", [("3x", "bad duration '3x'"), ("-1", "cannot be negative")])
def test_bad_durations(tmp_path, value, problem):
    message = error_of(tmp_path, f"""
        runtime: {{llm_provider: scripted}}
        agents:
          - id: a
            timeout: "{value}"
            script: [{{text: x}}]
        """)
    assert "crew.yaml:5: agents[0].timeout:" in message and problem in message


def test_durations_go_style():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration(12) == 12.0


def test_every_problem_is_listed(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted, log_levl: info}
        agents:
          - {id: a, max_turns: 0, script: [{text: x}]}
        """)
    assert "runtime.log_levl" in message and "agents[0].max_turns" in message


def test_env_file_must_stay_in_the_crew_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    message = error_of(tmp_path / "sub", """
        runtime: {llm_provider: scripted, env_file: ../.env}
        agents:
          - {id: a, script: [{text: x}]}
        """)
    assert "runtime.env_file" in message and "outside the crew file's folder" in message


@pytest.mark.parametrize("how", ["absolute", "symlink"])
def test_env_file_cannot_leave_the_folder_by_an_absolute_path_or_a_link(tmp_path, how):
    (tmp_path / "secrets.env").write_text("TOKEN=outside\n")
    (tmp_path / "sub").mkdir()
    name = str(tmp_path / "secrets.env") if how == "absolute" else "link.env"
    if how == "symlink":
        (tmp_path / "sub" / "link.env").symlink_to(tmp_path / "secrets.env")
    message = error_of(tmp_path / "sub", f"""
        runtime: {{llm_provider: scripted, env_file: "{name}"}}
        agents:
          - {{id: a, script: [{{text: x}}]}}
        """)
    assert "runtime.env_file" in message and "outside the crew file's folder" in message


def test_malformed_env_reference(tmp_path):
    message = error_of(tmp_path, """
        runtime: {llm_provider: scripted, api_key: "env:1BAD"}
        agents:
          - {id: a, script: [{text: x}]}
        """)
    assert "crew.yaml:2: runtime.api_key: bad env reference 'env:1BAD'" in message


def test_env_references_resolve_late():
    loaded = load_crew_text("runtime: {api_key: 'env:CREWQ_T_KEY', base_url: 'env:CREWQ_T_URL:-http://x'}\n"
                            "agents: [{id: a}]\n")
    assert loaded.crew.runtime.api_key == "env:CREWQ_T_KEY"  # kept unresolved in the spec
    assert resolve(loaded.crew.runtime.base_url, {}) == "http://x"
    assert resolve("env:CREWQ_T_KEY", {"CREWQ_T_KEY": "s3"}) == "s3"
    with pytest.raises(MissingEnvError, match="CREWQ_T_KEY is not set"):
        resolve("env:CREWQ_T_KEY", {}, key="runtime.api_key")


def test_a_placeholder_no_input_fills_is_plain_text_and_named(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        task: {input: "about {topic} in {year}"}
        agents: [{id: a, script: [{text: "got {input}"}]}]
        """)
    result = CliRunner().invoke(main, ["run", str(path), "-i", "year=2026"],
                                env={"CREWQ_REDIS_URL": "", "REDIS_URL": ""})
    assert result.exit_code == 0, result.output
    assert "Task:\nabout {topic} in 2026" in result.output
    assert "task.input: {topic} is sent as written (no --input topic=... fills it)" in result.output


def test_routex_crew_file_loads_unchanged(tmp_path):
    path = write_crew(tmp_path, """
        runtime:
          name: research-crew
          llm_provider: anthropic
          model: claude-sonnet-4-5
          api_key: env:ANTHROPIC_API_KEY
          base_url: https://llm.example
          log_level: info
          env_file: .env
        task:
          input: "Research {topic}"
          output_file: out/report.md
          max_duration: 10m
        agents:
          - id: planner
            role: planner
            goal: plan
            backstory: seasoned
            tools: []
            restart: one_for_one
            max_restarts: 3
            restart_window: 60s
            max_retries: 2
            timeout: 2m
            max_turns: 8
            max_total_tool_calls: 20
            max_duplicate_tool_calls: 2
          - id: researcher
            role: researcher
            depends: [planner]
            tools: [read_file]
            llm: {provider: openai, model: gpt-4o, api_key: env:OPENAI_API_KEY, base_url: http://127.0.0.1:1/v1,
                  temperature: 0.2, max_tokens: 1024}
            restart: rest_for_one
        tools:
          - {name: read_file, api_key: "", base_dir: ./data, max_results: 5, extra: {k: v}}
        memory: {backend: redis, ttl: 1h, redis_url: env:REDIS_URL}
        observability: {tracing: true, metrics: true, jaeger_endpoint: http://127.0.0.1:14268, metrics_addr: ":9090"}
        """)
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=x\n")
    loaded = load_crew(path)
    crew = loaded.crew
    assert [a.id for a in crew.agents] == ["planner", "researcher"]
    assert crew.agents[1].depends_on == ["planner"]
    assert crew.task.max_duration == 600 and crew.agents[0].timeout == 120
    assert crew.llm_of(crew.agents[1]).provider == "openai"
    assert crew.memory.ttl == 3600


def test_schema_command_prints_json_schema():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "crewq crew file"
    assert "agents" in schema["properties"] and "Agent" in schema["$defs"]


def test_validate_and_plan_need_no_secrets(tmp_path):
    path = write_crew(tmp_path, textwrap.dedent("""
        runtime: {llm_provider: anthropic, model: claude-x, api_key: env:CREWQ_NOT_SET_ANYWHERE}
        agents:
          - {id: a}
          - {id: b, depends_on: [a], llm: {provider: ollama, model: llama3}}
        """))
    runner = CliRunner()
    result = runner.invoke(main, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert "wave 1:" in result.output and "ollama/llama3" in result.output and "anthropic/claude-x" in result.output
    assert runner.invoke(main, ["validate", str(path)]).exit_code == 0
