"""End to end: a researcher calls an MCP tool and wikipedia in one parallel turn, on a real worker
over a real redis-server, with the official SDK's MCP server and a local Wikipedia fake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crewq.workers.tools.mcp import forget_servers

from fakes.tool_servers import FakeApis
from helpers import run_crew, write_crew

SERVER_SCRIPT = str(Path(__file__).parent / "fakes" / "mcp_server.py")

CREW = """
runtime: {{name: research, llm_provider: scripted}}
task: {{input: "how many hearts has an octopus?"}}
tools:
  - {{name: mcp, extra: {{server_name: calc, server_url: "{mcp_url}"}}}}
  - {{name: wikipedia, extra: {{base_url: "{wiki_url}", allow_private: true}}}}
agents:
  - id: researcher
    role: researcher
    tools: [calc, wikipedia]
    script:
      - tool_calls:
          - {{name: add, arguments: {{a: 1, b: 2}}}}
          - {{name: wikipedia, arguments: {{query: Octopus, action: summary}}}}
          - {{name: fail, arguments: {{reason: boom}}}}
      - text: "found {{tool_results}}"
"""


@pytest.fixture
def mcp_url():
    proc = subprocess.Popen([sys.executable, SERVER_SCRIPT, "http"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        forget_servers()
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_mcp_and_wikipedia_in_one_parallel_turn(app, ledger, worker, tmp_path, mcp_url):
    with FakeApis() as wiki:
        path = write_crew(tmp_path, CREW.format(mcp_url=mcp_url, wiki_url=wiki.url))
        status = run_crew(app, path, timeout=60)

    assert status.status == "succeeded", status
    events = ledger.events(status.run_id, count=None)
    for event in events:  # shown with -s
        if event["type"] in ("llm_call", "tool_call", "tool_result", "agent_succeeded"):
            print(f"[events] {event['type']:<15} {event['agent']} turn={event.get('turn')} "
                  f"{event.get('name') or event.get('tool_calls') or ''} is_error={event.get('is_error', '')}")
    results = sorted((e for e in events if e["type"] == "tool_result"), key=lambda e: e["index"])
    assert [(e["name"], e["turn"], e["is_error"]) for e in results] == [
        ("add", 0, False), ("wikipedia", 0, False), ("fail", 0, True)]
    output = ledger.agent(status.run_id, "researcher")["output"]
    first, second, third = output.removeprefix("found ").split("|")
    assert '"total": 3' in first
    assert "Octopuses have three hearts." in second
    assert "failed on purpose: boom" in third
    assert wiki.requests[-1]["path"] == "/api/rest_v1/page/summary/Octopus"


def test_a_tool_that_cannot_be_built_where_it_is_called_is_a_tool_error(app, ledger, worker, tmp_path,
                                                                         monkeypatch):
    # The turn's worker built the toolbox; the tool call's worker cannot (its MCP server is down
    # from there). The call must come back as a tool error, not leave the next turn waiting.
    import crewq.workers.tool_call
    from crewq.config.errors import ConfigError

    def unavailable(spec, agent_id, policy):
        raise ConfigError("MCP server 'calc' (http://127.0.0.1:9/mcp) is not usable: connection refused",
                          key="tools.mcp")
    monkeypatch.setattr(crewq.workers.tool_call, "tools_for", unavailable)
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - id: a
            tools: [list_files]
            script:
              - {tool_calls: [{name: list_files}]}
              - {text: "went on: {tool_results}"}
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded", status
    assert status.output == ("went on: tool 'list_files' is not available: tools.mcp: MCP server 'calc' "
                                "(http://127.0.0.1:9/mcp) is not usable: connection refused")
    results = [e for e in ledger.events(status.run_id, count=None) if e["type"] == "tool_result"]
    assert [(r["name"], r["is_error"]) for r in results] == [("list_files", True)]
