"""Issue 3's acceptance: a crew on three HTTP providers (local fakes), on a real worker process."""

from __future__ import annotations

import pytest
import redis
from click.testing import CliRunner

from crewq.scheduler.cli import main
from crewq.workers.ledger.state import RunState

from fakes.llm_servers import FakeLLMServer, Reply, anthropic_error, anthropic_message, ollama_chat, openai_completion
from helpers import run_crew, write_crew

KEYS = {"E2E_ANTHROPIC_KEY": "sk-ant-e2e-3b8f1c", "E2E_OPENAI_KEY": "sk-oai-e2e-9d2a7e"}


@pytest.fixture
def servers():
    with FakeLLMServer() as anthropic, FakeLLMServer() as openai, FakeLLMServer() as ollama:
        yield anthropic, openai, ollama


def redis_contains(url: str, needle: bytes) -> list:
    client = redis.Redis.from_url(url)
    hits = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        values = {b"string": lambda: [client.get(key)], b"hash": lambda: list(client.hgetall(key).values()),
                  b"list": lambda: client.lrange(key, 0, -1), b"set": lambda: list(client.smembers(key)),
                  b"zset": lambda: client.zrange(key, 0, -1),
                  b"stream": lambda: [v for _, f in client.xrange(key) for v in f.values()]}.get(kind, list)()
        if any(needle in v for v in values + [key]):
            hits.append(key)
    return hits


def test_three_providers_in_one_crew(app, worker_processes, servers, tmp_path, redis_url):
    anthropic, openai, ollama = servers
    anthropic.queue(Reply(body=anthropic_message(tool_uses=[("tu_1", "list_files", {}),
                                                            ("tu_2", "list_files", {"recursive": True})],
                                                 usage=(1000, 200))),
                    Reply(body=anthropic_message(text="facts from claude", usage=(1500, 300))))
    openai.queue(Reply(body=openai_completion(text="outline from gpt", usage=(800, 100))))
    ollama.queue(Reply(body=ollama_chat(text="final from llama", counts=(400, 50))))
    node = worker_processes.start("prov", concurrency=4, env={**KEYS}, loglevel="DEBUG")
    path = write_crew(tmp_path, f"""
        runtime: {{name: mixed}}
        task: {{input: "explain tides"}}
        agents:
          - id: researcher
            tools: [list_files]
            llm: {{provider: anthropic, model: claude-sonnet-4-5, api_key: env:E2E_ANTHROPIC_KEY,
                   base_url: "{anthropic.url}"}}
          - id: outliner
            llm: {{provider: openai-compatible, model: gpt-4o, api_key: env:E2E_OPENAI_KEY,
                   base_url: "{openai.url}/v1"}}
          - id: writer
            depends_on: [researcher, outliner]
            llm: {{provider: ollama, model: llama3.1, base_url: "{ollama.url}"}}
        """)
    status = run_crew(app, path, timeout=60)
    assert status.status == "succeeded", status
    assert status.output == "final from llama"

    # Each server got its own wire format, with its key, and the tool results went back in order.
    assert anthropic.received[0].headers["x-api-key"] == KEYS["E2E_ANTHROPIC_KEY"]
    second = anthropic.received[1].body["messages"][-1]
    assert [b["tool_use_id"] for b in second["content"]] == ["tu_1", "tu_2"]
    assert openai.received[0].headers["authorization"] == f"Bearer {KEYS['E2E_OPENAI_KEY']}"
    assert openai.received[0].path == "/v1/chat/completions"
    assert ollama.received[0].path == "/api/chat"
    assert "Output of researcher:\nfacts from claude" in ollama.received[0].body["messages"][-1]["content"]

    # `crewq status` shows tokens and a cost per agent.
    shown = CliRunner().invoke(main, ["status", status.run_id], env={"CREWQ_REDIS_URL": redis_url})
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.output.splitlines() if line.startswith("  ")}
    assert "2500/500 tok" in lines["researcher"] and "$0.0150" in lines["researcher"]  # 2500*3e-6 + 500*15e-6
    # openai-compatible servers have no price: unknown, never shown as free; ollama runs locally, $0.
    assert "800/100 tok" in lines["outliner"] and "cost unknown (1 call to models without a price)" in lines["outliner"]
    assert "400/50 tok" in lines["writer"]
    assert "tokens: 3700 in, 650 out, cost at least $0.0150 (1 call to models without a price)" in shown.output
    assert "tokens: 3700 in, 650 out" in shown.output

    # The keys are in no Redis key or value, and in no log line of the worker.
    for secret in KEYS.values():
        assert redis_contains(redis_url, secret.encode()) == []
        assert secret not in worker_processes.log(node)
    assert "crewq.agent_turn" in worker_processes.log(node)  # the log is there and was read


def test_a_429_frees_the_worker_slot_while_it_waits(app, ledger, worker_processes, servers, tmp_path):
    anthropic, _, _ = servers
    anthropic.queue(Reply(status=429, body=anthropic_error("rate_limit_error"), headers={"retry-after": "2"}),
                    Reply(body=anthropic_message(text="after the wait")))
    node = worker_processes.start("one", concurrency=1, env={**KEYS})
    path = write_crew(tmp_path, f"""
        agents:
          - id: limited
            llm: {{provider: anthropic, model: claude-sonnet-4-5, api_key: env:E2E_ANTHROPIC_KEY,
                   base_url: "{anthropic.url}"}}
          - id: other
            llm: {{provider: scripted}}
            script: [{{latency: 0.3s, text: "ran meanwhile"}}]
        """)
    status = run_crew(app, path, timeout=60)
    assert status.status == "succeeded", status
    events = ledger.events(status.run_id, count=None)
    retry = next(e for e in events if e["type"] == "llm_retry")
    assert retry["agent"] == "limited" and retry["countdown"] == 2.0
    resumed = [e for e in events if e["type"] == "turn_started" and e["agent"] == "limited"][1]
    other_done = next(e for e in events if e["type"] == "agent_succeeded" and e["agent"] == "other")
    # The other agent ran and finished on the same one-slot worker while the 429 waited.
    assert retry["ts"] < other_done["ts"] < resumed["ts"]
    assert status.agents["other"].hostname == status.agents["limited"].hostname == node


def test_env_references_in_prompts_and_provider_are_resolved_on_the_worker(app, ledger, worker, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("CREWQ_T_PROVIDER", "openai-compatible")
    monkeypatch.setenv("CREWQ_T_GOAL", "count the octopus's hearts")
    monkeypatch.setenv("CREWQ_T_OUT", "answers/hearts.txt")
    with FakeLLMServer() as openai:
        openai.queue(Reply(body=openai_completion(text="three")))
        path = write_crew(tmp_path, f"""
            runtime: {{llm_provider: "env:CREWQ_T_PROVIDER", model: m, base_url: "{openai.url}/v1"}}
            task: {{input: "env:CREWQ_T_TASK:-how many hearts?", output_file: "env:CREWQ_T_OUT"}}
            agents:
              - {{id: a, role: researcher, goal: "env:CREWQ_T_GOAL"}}
            """)
        status = run_crew(app, path)
    assert status.status == "succeeded", status
    sent = openai.received[0].body["messages"]
    assert "Your goal: count the octopus's hearts" in sent[0]["content"]
    assert sent[1]["content"] == "Task:\nhow many hearts?"
    # The references themselves are what Redis holds.
    stored = ledger.redis.get(ledger.keys.spec(status.run_id))
    assert stored.count("env:CREWQ_T_GOAL") == 1 and "octopus's hearts" not in stored
    # An input is text, never a reference: `{q}` filled with "env:..." does not read the worker's env.
    with FakeLLMServer() as openai:
        openai.queue(Reply(body=openai_completion(text="ok")))
        path2 = write_crew(tmp_path, f"""
            runtime: {{llm_provider: openai-compatible, model: m, base_url: "{openai.url}/v1"}}
            task: {{input: "{{q}}"}}
            agents:
              - {{id: a}}
            """, name="inputs.yaml")
        from crewq.config.loader import load_crew
        from crewq.scheduler.runs import Client, submit_loaded
        run_id = submit_loaded(app, load_crew(path2), {"q": "env:CREWQ_T_GOAL"})
        assert Client(app).wait(run_id, timeout=30).status == "succeeded"
    assert openai.received[0].body["messages"][1]["content"] == "Task:\nenv:CREWQ_T_GOAL"
    from crewq.scheduler.commands import write_outputs
    write_outputs(RunState(run_id="r", status="succeeded", output="three"), str(path), None)
    assert (tmp_path / "answers" / "hearts.txt").read_text() == "three\n"
