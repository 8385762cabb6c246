"""End to end: a researcher calls an MCP tool and wikipedia in one parallel turn, on a real worker
over a real redis-server, with the official SDK's MCP server and a local Wikipedia fake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_crew, write_crew
from tests.fakes.tool_servers import FakeApis

from workers.tools.mcp import forget_servers

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

    assert status["status"] == "succeeded", status
    events = ledger.events(status["run_id"], count=None)
    for event in events:  # shown with -s
        if event["type"] in ("llm_call", "tool_call", "tool_result", "agent_succeeded"):
            print(f"[events] {event['type']:<15} {event['agent']} turn={event.get('turn')} "
                  f"{event.get('name') or event.get('tool_calls') or ''} is_error={event.get('is_error', '')}")
    results = sorted((e for e in events if e["type"] == "tool_result"), key=lambda e: e["index"])
    assert [(e["name"], e["turn"], e["is_error"]) for e in results] == [
        ("add", 0, False), ("wikipedia", 0, False), ("fail", 0, True)]
    output = ledger.agent(status["run_id"], "researcher")["output"]
    first, second, third = output.removeprefix("found ").split("|")
    assert '"total": 3' in first
    assert "Octopuses have three hearts." in second
    assert "failed on purpose: boom" in third
    assert wiki.requests[-1]["path"] == "/api/rest_v1/page/summary/Octopus"
