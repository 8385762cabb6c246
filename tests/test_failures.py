"""Every failure ends, and ends clearly: permanent errors are not restarted, budgets hold."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from crewq.workers.app import TOOL_TASK

from conftest import ROOT
from fakes.llm_servers import FakeLLMServer, Reply, openai_completion, openai_error
from helpers import run_crew, stored_result, write_crew


def kinds(ledger, run_id, kind):
    return [e for e in ledger.events(run_id, count=None) if e["type"] == kind]


@pytest.mark.parametrize("status,error_type,message", [
    (401, "invalid_request_error", "Incorrect API key provided"),
    (403, "permission_error", "Project does not have access"),
    (400, "invalid_request_error", "Unsupported parameter: 'max_tokens'"),
    (404, "invalid_request_error", "The model `gpt-9` does not exist"),
])
def test_a_permanent_provider_error_gets_exactly_one_request(app, ledger, worker, tmp_path, status, error_type,
                                                             message):
    with FakeLLMServer() as server:
        server.always(Reply(status=status, body=openai_error(error_type, message=message)))
        path = write_crew(tmp_path, f"""
            agents:
              - id: a
                llm: {{provider: openai, model: gpt-9, api_key: sk-literal-test-key, base_url: "{server.url}/v1"}}
              - {{id: b, depends_on: [a], llm: {{provider: scripted}}, script: [{{text: x}}]}}
            """)
        status_ = run_crew(app, path)
        requests = len(server.received)
    print(f"HTTP {status}: {requests} request(s); run error: {status_.error}")
    assert requests == 1
    assert status_.status == "failed" and message in status_.error  # the provider's own words
    assert status_.error.startswith("agent a failed after 1 attempt: openai: HTTP ")
    decisions = kinds(ledger, status_.run_id, "decision")
    assert [(d["action"], d["reason"]) for d in decisions] == [
        ("give_up", "a permanent error: restarting cannot fix it")]
    assert kinds(ledger, status_.run_id, "llm_retry") == []
    assert status_.agents["b"].status == "skipped"
    if status == 404:
        assert f"POST {server.url}/v1/chat/completions (model gpt-9)" in status_.error


def test_a_missing_env_variable_is_not_restarted(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted, api_key: "env:CREWQ_SURELY_UNSET_VAR"}
        agents:
          - {id: a, script: [{text: x}]}
        """)
    status = run_crew(app, path)
    assert status.status == "failed" and "CREWQ_SURELY_UNSET_VAR is not set" in status.error
    assert [d["action"] for d in kinds(ledger, status.run_id, "decision")] == ["give_up"]


def test_an_unreachable_provider_fails_the_run_within_a_minute_with_default_settings(tmp_path):
    # As a new user meets it: `crewq run` on the embedded default, no CREWQ_* setting, port 9 refuses.
    path = write_crew(tmp_path, """
        agents:
          - id: a
            llm: {provider: openai, model: gpt-4o, api_key: sk-literal-test-key, base_url: "http://127.0.0.1:9/v1"}
        """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWQ_") and k != "REDIS_URL"}
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "crewq", "run", str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # the bound the issue asks for
    seconds = time.monotonic() - began
    print(f"unreachable provider: exit {done.returncode} after {seconds:.1f}s: {done.stderr.strip()}")
    assert done.returncode == 1, done.stderr
    assert "agent a failed after 4 attempts" in done.stderr
    assert "cannot reach http://127.0.0.1:9/v1/chat/completions: connection refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_redelivered_tool_call_whose_result_is_recorded_does_not_run_again(app, ledger, worker, tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: a, tools: [write_file], script: [{tool_calls: [{name: write_file, arguments: {path: out.txt,
                                                  content: once}}]}, {text: done}]}
        """)
    status = run_crew(app, path)
    assert status.status == "succeeded"
    run_id = status.run_id
    (tmp_path / "out.txt").unlink()
    # The same message again, as Redis redelivers it after a crash between the result and the ack.
    sent = app.signature(TOOL_TASK, args=(run_id, "a", 0, 0, 0)).apply_async()
    again = stored_result(app, sent.id)
    assert again == {"index": 0, "is_error": False, "repeated": True}
    assert not (tmp_path / "out.txt").exists()  # the side effect was not repeated
    events = ledger.events(run_id, count=None)
    assert [e["type"] for e in events].count("tool_call") == 1
    assert [e["type"] for e in events].count("tool_result") == 1


def test_a_tool_call_whose_arguments_are_not_json_goes_back_to_the_model(app, ledger, worker, tmp_path):
    with FakeLLMServer() as server:
        server.queue(Reply(body=openai_completion(tool_calls=[("c1", "list_files", "{not json")])),
                     Reply(body=openai_completion(text="sorry, fixed")))
        path = write_crew(tmp_path, f"""
            agents:
              - id: a
                tools: [list_files]
                llm: {{provider: openai, model: gpt-4o, api_key: sk-literal-test-key, base_url: "{server.url}/v1"}}
            """)
        status = run_crew(app, path)
        told = server.received[1].body["messages"][-1]
    assert status.status == "succeeded" and status.output == "sorry, fixed"
    skipped = kinds(ledger, status.run_id, "tool_skipped")
    assert [(e["name"], e["index"]) for e in skipped] == [("list_files", 0)]
    assert "its arguments are not valid JSON: '{not json'" in skipped[0]["reason"]
    assert told["role"] == "tool" and "arguments are not valid JSON" in told["content"]
    assert kinds(ledger, status.run_id, "tool_call") == []
