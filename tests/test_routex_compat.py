"""A crew file written for Routex loads and means what it means in Routex: its values, defaults and
`env:` everywhere (crews of our own that use the keys of Routex's examples)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crewq.config.loader import load_crew
from crewq.scheduler.cli import main
from crewq.scheduler.validate import check, crew_warnings, render_task, task_override
from crewq.workers.tools.mcp import forget_servers
from crewq.workers.tools.registry import toolbox

from helpers import run_crew, write_crew

ROUTEX_CREW = """
    runtime:
      name:         "weather-compare"
      llm_provider: "anthropic"
      model:        "claude-sonnet-4-6"
      api_key:      "env:ANTHROPIC_API_KEY"
      log_level:    "WARN"
      env_file:     "."
    task:
      input:        "Compare the weather in {city} and London"
      output_file:  "env:WEATHER_OUTPUT_FILE"
      max_duration: "env:CREW_DEADLINE:-3m"
    tools:
      - name: write_file
        base_dir: "env:OUTPUT_DIR"
    agents:
      - id:          "lagos"
        role:        "researcher"
        goal:        "Find the weather"
        tools:
        depends_on:
        restart:     "env:LAGOS_RESTART"
        timeout:     "env:LAGOS_TIMEOUT"
        max_total_tool_calls: 0
        max_duplicate_tool_calls: 0
      - id:          "comparator"
        role:        "writer"
        goal:        "Compare"
        tools:       []
        depends_on:  ["lagos"]
        max_retries: 2
        timeout:     "90s"
    memory:
      backend: "inmem"
      ttl:     "env:MEMORY_TTL"
    observability:
      tracing: false
      metrics: false
"""


def test_routex_values_and_defaults(tmp_path, monkeypatch):
    for name in ("LAGOS_TIMEOUT", "MEMORY_TTL", "CREW_DEADLINE", "ROUTEX_TASK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAGOS_RESTART", "rest_for_one")
    (tmp_path / ".env").write_text("MEMORY_TTL=30m\n")  # env_file "." is the .env beside the crew
    loaded = load_crew(write_crew(tmp_path, ROUTEX_CREW))
    crew = loaded.crew
    lagos, comparator = crew.agents
    assert crew.runtime.log_level == "warn" and crew.memory.backend == "inmem"
    assert crew.memory.ttl == 1800 and crew.task.max_duration == 180
    assert lagos.tools == [] and lagos.depends_on == [] and lagos.restart == "rest_for_one"
    assert (lagos.max_total_tool_calls, lagos.max_duplicate_tool_calls) == (20, 2)
    assert lagos.max_turns is None and lagos.turn_limit == 22  # bounded by the tool budget
    assert lagos.timeout is None and comparator.timeout == 90  # unset env: takes the key's default...
    [warning] = loaded.warnings
    assert warning.endswith("crew.yaml:23: agents[0].timeout: env:LAGOS_TIMEOUT is not set; the default is used")
    assert crew.task.output_file == "env:WEATHER_OUTPUT_FILE"  # ...a string stays a reference for later


def test_a_missing_dot_env_is_fine_but_a_bad_value_from_env_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LAGOS_RESTART", "sometimes")
    message = str(pytest.raises(Exception, check, write_crew(tmp_path, ROUTEX_CREW)).value)
    assert "crew.yaml:22: agents[0].restart: Input should be 'one_for_one', 'rest_for_one' or 'one_for_all'" in message


def test_placeholders_and_routex_task(tmp_path, monkeypatch):
    monkeypatch.setenv("LAGOS_RESTART", "one_for_one")
    loaded = load_crew(write_crew(tmp_path, ROUTEX_CREW))
    assert render_task(loaded, {}) == "Compare the weather in {city} and London"  # plain text in Routex
    assert render_task(loaded, {"city": "Lagos"}) == "Compare the weather in Lagos and London"
    monkeypatch.delenv("ROUTEX_TASK", raising=False)
    assert task_override(loaded, None) is None
    (tmp_path / ".env").write_text("ROUTEX_TASK=from the env file\n")
    assert task_override(loaded, None) == "from the env file"
    monkeypatch.setenv("ROUTEX_TASK", "from the process")
    assert task_override(loaded, None) == "from the process"
    assert task_override(loaded, "from --task") == "from --task"


def test_an_unset_output_file_still_prints_the_output(tmp_path, monkeypatch):
    monkeypatch.delenv("CREWQ_T_OUT", raising=False)
    monkeypatch.setenv("ROUTEX_TASK", "the routex task")
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        task: {input: "unused", output_file: "env:CREWQ_T_OUT"}
        agents: [{id: a, script: [{text: "did {input}"}]}]
        """)
    result = CliRunner().invoke(main, ["run", str(path)], env={"CREWQ_REDIS_URL": "", "REDIS_URL": ""})
    assert result.exit_code == 0, result.output
    assert "Task:\nthe routex task" in result.output
    assert "environment variable CREWQ_T_OUT is not set" in result.output and "not written to a file" in result.output


def test_with_no_max_turns_the_tool_budget_ends_an_agent_that_keeps_asking(app, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            max_restarts: 0
            tools: [list_files]
            max_total_tool_calls: 1
            script:
              - tool_calls: [{name: list_files}]
              - tool_calls: [{name: list_files, arguments: {recursive: true}}]
              - tool_calls: [{name: list_files, arguments: {recursive: false}}]
              - text: never reached
        """)
    status = run_crew(app, path)
    assert status.status == "failed"
    assert "the tool budget (1 calls, so 3 turns; set max_turns for more) reached" in status.error


# -- MCP tools named one by one, as Routex's agents name them --------------------------------------

MCP_SERVER = str(Path(__file__).parent / "fakes" / "mcp_server.py")


def mcp_crew(tmp_path, tools: str) -> Path:
    return write_crew(tmp_path, f"""
        runtime: {{llm_provider: scripted}}
        tools:
          - name: mcp
            extra: {{server_name: sdk, command: "{sys.executable}", args: ["{MCP_SERVER}", stdio]}}
        agents:
          - {{id: clerk, tools: {tools}, script: [{{text: done}}]}}
        """)


@pytest.fixture
def fresh_mcp():
    forget_servers()
    yield
    forget_servers()


def test_validate_accepts_names_an_mcp_server_may_offer_offline(tmp_path, monkeypatch):
    path = mcp_crew(tmp_path, "[echo, stock_level]")
    monkeypatch.setattr("crewq.workers.tools.registry.mcp_offers", None)  # offline: never connects
    loaded, _ = check(path)
    assert [w.split(": ", 2)[-1] for w in crew_warnings(loaded)] == [
        "'echo' is no built-in tool: an MCP server of the crew must offer it (`crewq plan` connects and checks)",
        "'stock_level' is no built-in tool: an MCP server of the crew must offer it (`crewq plan` connects and checks)"]


def test_plan_connects_and_names_a_tool_no_server_offers(tmp_path, fresh_mcp):
    result = CliRunner().invoke(main, ["plan", str(mcp_crew(tmp_path, "[echo, stock_level]"))])
    assert result.exit_code == 2
    assert ("agents[0].tools[1]: agent 'clerk': no MCP server of the crew offers a tool 'stock_level'; "
            "they offer: add, echo, fail, lookup") in result.output
    result = CliRunner().invoke(main, ["plan", str(mcp_crew(tmp_path, "[echo, sdk.add]"))])
    assert result.exit_code == 0, result.output
    assert "tools: echo, sdk.add" in result.output


def test_an_agent_gets_only_the_mcp_tools_it_names(tmp_path, fresh_mcp):
    crew = load_crew(mcp_crew(tmp_path, "[echo, sdk.add]")).crew
    tools = toolbox(crew, crew.agents[0])
    assert sorted(tools) == ["add", "echo"]  # not fail or lookup: tools it did not list are not callable
    assert tools["add"].wire_name == "add"


# -- Routex's CLI flags ---------------------------------------------------------------------------

def test_run_flags_task_timeout_env_file_output_and_dry_run(tmp_path, monkeypatch):
    monkeypatch.delenv("ROUTEX_TASK", raising=False)
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted, env_file: missing.env}
        task: {input: "from the file", max_duration: 1h}
        agents: [{id: a, script: [{text: "did {input}"}]}]
        """)
    (tmp_path / "prod.env").write_text("ROUTEX_TASK=from prod.env\n")
    env = {"CREWQ_REDIS_URL": "", "REDIS_URL": ""}
    dry = CliRunner().invoke(main, ["run", str(path), "--dry-run", "-e", "prod.env"], env=env)
    assert dry.exit_code == 0 and "wave 0:" in dry.output and "run " not in dry.output
    out = tmp_path / "out.md"
    result = CliRunner().invoke(main, ["run", str(path), "-e", "prod.env", "-T", "5m", "-l", "WARN", "-o", str(out)],
                                env=env)
    assert result.exit_code == 0, result.output
    assert out.read_text() == "did Task:\nfrom prod.env\n"
    result = CliRunner().invoke(main, ["run", str(path), "-t", "from -t", "-T", "2m"], env=env)
    assert result.exit_code == 0 and "Task:\nfrom -t" in result.output
    bad = CliRunner().invoke(main, ["run", str(path), "-T", "soon"], env=env)
    assert bad.exit_code == 2 and "bad duration 'soon'" in bad.output


def test_validate_json_tools_list_json_and_version_json(tmp_path):
    import json
    good = write_crew(tmp_path, "runtime: {llm_provider: scripted}\nagents: [{id: a, script: [{text: x}]}]\n")
    result = CliRunner().invoke(main, ["validate", "--json", str(good)])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"file": str(good), "valid": True, "errors": [], "warnings": [],
                                         "agents": ["a"], "waves": [["a"]]}
    bad = write_crew(tmp_path, "agents: [{id: a, tools: [nope, nada]}]\n", name="bad.yaml")
    result = CliRunner().invoke(main, ["validate", "--json", str(bad)])
    assert result.exit_code == 2
    errors = json.loads(result.output)["errors"]
    assert len(errors) == 3 and "unknown tool 'nope'" in errors[0] and "unknown tool 'nada'" in errors[1]
    tools = json.loads(CliRunner().invoke(main, ["tools", "list", "--json"]).output)
    read_file = next(t for t in tools if t["name"] == "read_file")
    assert read_file["source"] == "builtin" and read_file["description"]
    version = json.loads(CliRunner().invoke(main, ["version", "--json"]).output)
    assert version["version"] and version["python"]


# -- a crew in Routex's style, end to end against local fakes -------------------------------------

def test_a_routex_style_crew_runs_end_to_end(app, ledger, worker, tmp_path, fresh_mcp, monkeypatch):
    from fakes.llm_servers import FakeLLMServer, Reply, anthropic_message
    from fakes.tool_servers import FakeApis
    monkeypatch.delenv("ROUTEX_TASK", raising=False)
    with FakeLLMServer() as llm, FakeApis() as apis:
        llm.queue(Reply(body=anthropic_message(tool_uses=[
                      ("tu_1", "echo", {"text": "stock of octopus plushies"}),
                      ("tu_2", "http_request", {"url": "/echo/weather", "params": {"q": "Lagos,NG"}})])),
                  Reply(body=anthropic_message(text="Lagos: warm; 12 plushies")),
                  Reply(body=anthropic_message(text="Report: Lagos is warm and we have 12 plushies")))
        (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-routex-e2e\nOWM_KEY=owm-secret\n")
        path = write_crew(tmp_path, f"""
            runtime:
              name:         "routex-style"
              llm_provider: "anthropic"
              model:        "claude-sonnet-4-6"
              api_key:      "env:ANTHROPIC_API_KEY"
              base_url:     "{llm.url}/v1/messages"
              log_level:    "WARN"
              env_file:     "."
            task:
              input:        "Check the weather in Lagos and the {{stock}}"
              max_duration: "2m"
            tools:
              - name: "mcp"
                extra: {{server_name: shop, command: "{sys.executable}", args: ["{MCP_SERVER}", stdio]}}
              - name: "http_request"
                extra:
                  base_url:           "{apis.url}"
                  allow_private:      true
                  query_api_key:      "env:OWM_KEY"
                  query_api_key_name: "appid"
                  param_units:        "metric"
                  header_X_Client:    "routex-crew"
            agents:
              - id:          "researcher"
                role:        "researcher"
                goal:        "Find the weather and the stock"
                tools:       ["echo", "http_request"]
                depends_on:
                restart:     "one_for_one"
                max_retries: 2
                timeout:     "60s"
                max_total_tool_calls: 0
              - id:          "writer"
                role:        "writer"
                goal:        "Write the report"
                tools:
                depends_on:  ["researcher"]
            memory:
              backend: "inmem"
              ttl:     "1h"
            observability:
              tracing: false
              metrics: false
            """)
        status = run_crew(app, path, timeout=60)
        assert status.status == "succeeded", status
        assert status.output == "Report: Lagos is warm and we have 12 plushies"
        first = llm.received[0]
        assert first.path == "/v1/messages" and first.headers["x-api-key"] == "sk-ant-routex-e2e"
        assert [t["name"] for t in first.body["tools"]] == ["echo", "http_request"]  # only the tools it named
        assert "the {stock}" in first.body["messages"][0]["content"]  # no --input: plain text
        weather = apis.last()
        assert weather["path"] == "/echo/weather"
        assert weather["query"] == {"units": "metric", "q": "Lagos,NG", "appid": "owm-secret"}
        assert weather["headers"]["x-client"] == "routex-crew"
        results = llm.received[1].body["messages"][-1]["content"]
        assert [b["tool_use_id"] for b in results] == ["tu_1", "tu_2"]
        assert "stock of octopus plushies" in json.dumps(results[0])
    events = [(e["type"], e.get("agent") or "-", e.get("name") or "") for e in ledger.events(status.run_id)]
    print("\n".join(" ".join(e).strip() for e in events))
    assert ("tool_call", "researcher", "echo") in events and ("tool_call", "researcher", "http_request") in events
    assert events[-1][0] == "run_finished"
