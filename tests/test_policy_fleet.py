"""The fleet policy: a worker on the default policy refuses what runs code, reads outside the roots,
puts its environment into prompts or sends a key elsewhere, naming the setting; the embedded
default runs the same crews."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crewq.config.envref import resolve
from crewq.config.errors import ConfigError, ToolServerUnavailable
from crewq.config.loader import load_crew
from crewq.config.policy import GuardedEnv, Policy
from crewq.scheduler.embedded import embedded_fleet
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.tools.mcp import forget_servers

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion
from helpers import write_crew

SERVER_SCRIPT = str(Path(__file__).parent / "fakes" / "mcp_server.py")
KEY = "sk-policy-test-key-0123456789"


def crews(tmp_path: Path, llm_url: str) -> dict[str, tuple[str, str]]:
    """name -> (crew text, the policy setting a fleet default names when it refuses it)."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the redis password", encoding="utf-8")
    marker = tmp_path / "ran"
    return {
        "python": (f"""
            runtime: {{llm_provider: scripted}}
            tools: [{{name: sh, python: "subprocess:getoutput"}}]
            agents:
              - id: a
                tools: [sh]
                script:
                  - tool_calls: [{{name: sh, arguments: {{cmd: "touch {marker} && echo ran-$((6*7))"}}}}]
                  - text: "got {{tool_results}}"
            """, "policy python_tools"),
        "stdio": (f"""
            runtime: {{llm_provider: scripted}}
            tools: [{{name: mcp, extra: {{server_name: calc, command: "{sys.executable}", args: ["{SERVER_SCRIPT}"]}}}}]
            agents:
              - id: a
                tools: [calc]
                script:
                  - tool_calls: [{{name: add, arguments: {{a: 20, b: 22}}}}]
                  - text: "sum {{tool_results}}"
            """, "policy mcp_commands"),
        "base_dir": (f"""
            runtime: {{llm_provider: scripted}}
            tools: [{{name: read_file, base_dir: /}}]
            agents:
              - id: a
                tools: [read_file]
                script:
                  - tool_calls: [{{name: read_file, arguments: {{path: "{str(secret)[1:]}"}}}}]
                  - text: "read {{tool_results}}"
            """, "policy roots"),
        "prompt": ("""
            runtime: {llm_provider: scripted}
            agents:
              - id: a
                goal: env:CREWQ_T_WORKER_SECRET
                script: [{text: done}]
            """, "policy env_in_prompts"),
        "task": ("""
            runtime: {llm_provider: scripted}
            task: {input: env:CREWQ_T_WORKER_SECRET}
            agents: [{id: a, script: [{text: done}]}]
            """, "policy env_in_prompts"),
        "key": (f"""
            runtime: {{llm_provider: openai, model: gpt-4o, api_key: env:OPENAI_API_KEY, base_url: "{llm_url}/v1"}}
            agents: [{{id: a}}]
            """, "policy secrets.OPENAI_API_KEY"),
        "private": (f"""
            runtime: {{llm_provider: openai-compatible, model: m, base_url: "{llm_url}/v1"}}
            agents: [{{id: a}}]
            """, "allow_private_addresses"),
    }


def run_all(app, tmp_path: Path, texts: dict[str, tuple[str, str]]) -> dict[str, dict]:
    client = Client(app)
    ids = {name: submit_loaded(app, load_crew(write_crew(tmp_path, text, f"{name}.yaml")))
           for name, (text, _) in texts.items()}
    out = {}
    for name, run_id in ids.items():
        for _ in client.events(run_id, follow=True, timeout=60):
            pass
        out[name] = client.status(run_id)
    return out


@pytest.fixture
def llm():
    with FakeLLMServer() as server:
        server.default = Reply(body=openai_completion(text="from the model"))
        yield server


def test_a_fleet_on_the_default_policy_refuses_each_attack_naming_the_setting(app, supervisor, worker_processes,
                                                                              tmp_path, llm):
    worker_processes.start("fleet", env={"CREWQ_POLICY": "", "OPENAI_API_KEY": KEY,
                                         "CREWQ_T_WORKER_SECRET": "worker-secret"})
    texts = crews(tmp_path, llm.url)
    statuses = run_all(app, tmp_path, texts)
    for name, (_, setting) in texts.items():
        status = statuses[name]
        error = (status.agents["a"].error or "")
        print(name, "->", error)
        assert status.status == "failed", (name, status)
        assert setting in error, (name, error)
        assert status.agents["a"].attempt == 0, (name, "a refusal is permanent: no restart")
    assert not (tmp_path / "ran").exists()  # the python tool never ran
    assert llm.received == []  # neither the key nor the request left the worker
    shown = str(statuses)
    assert KEY not in shown and "worker-secret" not in shown and "redis password" not in shown


def test_the_embedded_default_runs_the_same_crews(tmp_path, llm, monkeypatch):
    monkeypatch.delenv("CREWQ_POLICY")  # the embedded default, as `crewq run` sees it
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("CREWQ_T_WORKER_SECRET", "worker-secret")
    texts = crews(tmp_path, llm.url)
    try:
        with embedded_fleet(concurrency=4) as app:
            statuses = run_all(app, tmp_path, texts)
    finally:
        forget_servers()
    for name, status in statuses.items():
        assert status.status == "succeeded", (name, status)
    assert "ran-42" in statuses["python"].output and (tmp_path / "ran").exists()
    assert "42" in statuses["stdio"].output
    assert "the redis password" in statuses["base_dir"].output
    assert statuses["key"].output == "from the model"
    assert f"Bearer {KEY}" in [r.headers.get("authorization") for r in llm.received]


# -- the policy itself ------------------------------------------------------------------------------

def test_env_references_on_the_default_policy():
    env = GuardedEnv({"OPENAI_API_KEY": KEY, "CREW_TOPIC": "tides", "HOME": "/root"}, Policy())
    assert resolve("env:OPENAI_API_KEY", env, key="agents.a.llm.api_key") == KEY
    assert resolve("env:OPENAI_API_KEY", env, key="agents.a.llm.fallback[0].api_key") == KEY
    for value, key, setting in [("env:HOME", "tools.x.extra.base_url", "policy env_vars"),
                                ("env:OPENAI_API_KEY", "tools.mcp.extra.header_Authorization", "policy secrets"),
                                ("env:CREW_TOPIC", "task.input", "policy env_in_prompts"),
                                ("env:CREW_TOPIC", "agents.a.b.backstory", "policy env_in_prompts")]:
        with pytest.raises(ConfigError, match=setting):
            resolve(value, env, key=key)
    opened = GuardedEnv({"CREW_TOPIC": "tides"}, Policy(env_vars=["CREW_*"]))
    assert resolve({"q": "env:CREW_TOPIC"}, opened, key="tools.x.extra") == {"q": "tides"}
    assert resolve("env:HOME", {"HOME": "/root"}) == "/root"  # a plain mapping: a local command, no policy


def test_secret_hosts_python_modules_commands_and_roots(tmp_path):
    policy = Policy(python_tools=["mytools.*", "other:fn"], mcp_commands=["/usr/bin/mcp-git"], roots=[str(tmp_path)],
                    secrets={"OPENAI_API_KEY": ["llm.example", "gateway.internal"]})
    policy.check_secret_destination("OPENAI_API_KEY", "https://gateway.internal/v1")
    with pytest.raises(ConfigError, match=r"not to evil.example \(policy secrets.OPENAI_API_KEY\)"):
        policy.check_secret_destination("OPENAI_API_KEY", "https://evil.example/v1")
    with pytest.raises(ConfigError, match="may be sent to no host"):
        policy.check_secret_destination("ANTHROPIC_API_KEY", "https://anthropic.example")
    policy.check_python_tool("mytools.web:search", "k")
    policy.check_python_tool("other:fn", "k")
    for ref in ("subprocess:getoutput", "other:fn2", "mytoolsx:f"):
        with pytest.raises(ConfigError, match="policy python_tools"):
            policy.check_python_tool(ref, "k")
    policy.check_mcp_command("/usr/bin/mcp-git", "k")
    for command in ("/bin/sh", "mcp-git", "/usr/bin/../bin/sh"):
        with pytest.raises(ConfigError, match="policy mcp_commands"):
            policy.check_mcp_command(command, "k")
    policy.check_base_dir((tmp_path / "work").resolve(), "k")
    with pytest.raises(ConfigError, match="policy roots"):
        policy.check_base_dir(Path("/"), "k")


def test_the_policy_comes_from_the_workers_environment_or_a_file(tmp_path):
    assert Policy.from_env({}) == Policy()
    assert Policy.from_env({"CREWQ_POLICY": "trusted"}) == Policy.trusted()
    assert Policy.from_env({}, default=Policy.trusted()) == Policy.trusted()
    path = tmp_path / "policy.yaml"
    path.write_text("python_tools: [mytools]\nroots: [/srv/crews]\nlimits: {max_file_bytes: 4096}\n")
    policy = Policy.from_env({"CREWQ_POLICY": str(path)})
    assert policy.python_tools == ["mytools"] and policy.limits.max_file_bytes == 4096
    assert policy.secrets["OPENAI_API_KEY"] == Policy().secrets["OPENAI_API_KEY"]  # defaults kept
    path.write_text("python_tool: [mytools]\n")
    with pytest.raises(ConfigError, match="policy.yaml: python_tool: fleet policy: Extra inputs"):
        Policy.from_env({"CREWQ_POLICY": str(path)})


# -- one address guard for base_url, MCP server_url and the tools --------------------------------

@pytest.mark.parametrize("url", ["http://169.254.169.254/v1", "http://10.0.0.5:8000/v1", "http://[::1]:11434",
                                 "http://rebound.example/v1"])
def test_an_llm_base_url_on_a_private_address_is_refused(url, monkeypatch):
    from crewq.config.schema import Agent, Crew
    from crewq.workers.llm.chain import llm_chain
    from crewq.workers.llm.openai import OpenAIProvider
    from crewq.workers.llm.types import LLMRequest, Message
    from crewq.workers.tools import netguard
    monkeypatch.setattr(netguard, "resolver", lambda host, port: ["127.0.0.1"])  # a name aimed at the worker
    crew = Crew(runtime={"llm_provider": "openai-compatible", "model": "m", "base_url": url}, agents=[Agent(id="a")])
    config = llm_chain(crew, crew.agents[0], GuardedEnv({}, Policy()))[0]
    with pytest.raises(ConfigError, match="allow_private_addresses"):
        OpenAIProvider(config).complete(LLMRequest(system="", messages=[Message(role="user", content="x")]))


def test_an_mcp_server_url_on_a_private_address_is_refused_and_redirects_are_guarded(monkeypatch):
    from crewq.config.schema import ToolSpec
    from crewq.workers.tools import netguard
    from crewq.workers.tools.mcp.tools import McpServer
    spec = ToolSpec(name="mcp", extra={"server_name": "m", "server_url": "http://127.0.0.1:9/mcp"})
    with pytest.raises(ConfigError, match=r"tools.mcp.extra.server_url: MCP server 'm': refused: .*"
                                          "allow_private_addresses"):
        McpServer(spec, GuardedEnv({}, Policy()))
    assert McpServer(spec, GuardedEnv({}, Policy.trusted())).guarded is False
    # A public name: allowed at first, and every connection (a redirect, a rebinding) is checked again.
    monkeypatch.setattr(netguard, "resolver", lambda host, port: ["93.184.215.14"])
    public = McpServer(ToolSpec(name="mcp", extra={"server_url": "http://mcp.example/mcp"}), GuardedEnv({}, Policy()))
    assert public.guarded
    monkeypatch.setattr(netguard, "resolver", lambda host, port: ["169.254.169.254"])
    with pytest.raises(ToolServerUnavailable, match="169.254.169.254"):  # refused at connect time
        public.discover()


def test_a_tools_allow_private_needs_the_operator(monkeypatch):
    from crewq.config.schema import ToolSpec
    from crewq.workers.tools.base import ToolContext
    from crewq.workers.tools.read_url import ReadUrl
    tool = ReadUrl(ToolSpec(name="read_url", extra={"allow_private": True}))
    refused = tool.execute({"url": "http://127.0.0.1:9/"}, ToolContext("r", "a", "k", env=GuardedEnv({}, Policy())))
    assert refused.is_error and "policy allow_private_addresses" in refused.content


def test_settings_read_the_policy_from_the_environment_they_are_given(tmp_path):
    from crewq.config.settings import Settings
    assert Settings.from_env({}).policy == Policy()
    assert Settings.from_env({"CREWQ_POLICY": "trusted"}).policy == Policy.trusted()
    with pytest.raises(ConfigError, match="cannot read the fleet policy"):
        Settings.from_env({"CREWQ_POLICY": str(tmp_path / "missing.yaml")})


def test_a_tools_key_goes_only_to_the_hosts_its_secret_is_bound_to(monkeypatch):
    from crewq.config.schema import ToolSpec
    from crewq.workers.tools import netguard
    from crewq.workers.tools.base import ToolContext
    from crewq.workers.tools.mcp.tools import McpServer
    from crewq.workers.tools.web_search import WebSearch
    monkeypatch.setattr(netguard, "resolver", lambda host, port: ["93.184.215.14"])
    policy = Policy(secrets={"BRAVE_API_KEY": ["search.example"], "DOCS_TOKEN": ["mcp.docs.example"]})
    env = GuardedEnv({"BRAVE_API_KEY": "brave-secret", "DOCS_TOKEN": "docs-secret"}, policy)
    tool = WebSearch(ToolSpec(name="web_search", api_key="env:BRAVE_API_KEY",
                              extra={"backend": "brave", "base_url": "https://collector.example"}))
    result = tool.execute({"query": "tides"}, ToolContext("r", "a", "k", env=env))
    assert result.is_error and "not to collector.example (policy secrets.BRAVE_API_KEY)" in result.content
    policy.check_key_destination("env:BRAVE_API_KEY", "https://search.example/res/v1/web/search")
    policy.check_key_destination("a-literal-key", "http://anywhere.example")  # the submitter's own key
    with pytest.raises(ConfigError, match="policy secrets.DOCS_TOKEN"):
        McpServer(ToolSpec(name="mcp", api_key="env:DOCS_TOKEN", extra={"server_url": "https://evil.example/mcp"}), env)
    assert McpServer(ToolSpec(name="mcp", api_key="env:DOCS_TOKEN", extra={"server_url": "https://mcp.docs.example/mcp"}),
                     env).headers["Authorization"] == "Bearer docs-secret"


def test_an_llm_base_url_that_rebinds_to_a_private_address_reaches_nothing(monkeypatch):
    """The name passes the check before the request, then resolves to the worker itself at connect."""
    from crewq.config.errors import TransientProviderError
    from crewq.workers.llm.openai import OpenAIProvider
    from crewq.workers.llm.types import LLMConfig, LLMRequest, Message
    from crewq.workers.tools import netguard
    answers = iter([["93.184.215.14"]])
    monkeypatch.setattr(netguard, "resolver", lambda host, port: next(answers, ["127.0.0.1"]))
    with FakeLLMServer() as server:
        port = server.url.rsplit(":", 1)[1]
        config = LLMConfig(provider="openai-compatible", model="m", base_url=f"http://rebind.example:{port}/v1",
                           policy=Policy())
        with pytest.raises(TransientProviderError, match="refused: rebind.example resolves to a private"):
            OpenAIProvider(config).complete(LLMRequest(system="", messages=[Message(role="user", content="x")]))
        assert server.received == []


def test_a_secrets_binding_is_a_scheme_a_host_and_a_port():
    policy = Policy(secrets={"OPENAI_API_KEY": ["llm.example"], "GATEWAY_KEY": ["http://gw.internal:8080",
                                                                                "gw.internal:8443"]})
    for url in ("https://llm.example/v1", "https://LLM.example:443/v1"):
        policy.check_secret_destination("OPENAI_API_KEY", url)
    for url, shown in [("http://llm.example/v1", "http://llm.example:80"),
                       ("https://llm.example:8443/v1", "https://llm.example:8443"),
                       ("http://llm.example:443/v1", "http://llm.example:443")]:
        with pytest.raises(ConfigError, match=f"may be sent to llm.example, not to {shown} "):
            policy.check_secret_destination("OPENAI_API_KEY", url)
    policy.check_secret_destination("GATEWAY_KEY", "http://gw.internal:8080/v1")
    policy.check_secret_destination("GATEWAY_KEY", "https://gw.internal:8443/v1")
    for url in ("https://gw.internal/v1", "http://gw.internal:8443/v1", "https://gw.internal:notaport/v1"):
        with pytest.raises(ConfigError, match="GATEWAY_KEY"):
            policy.check_secret_destination("GATEWAY_KEY", url)
    with pytest.raises(ValueError, match="ftp://gw.internal"):
        Policy(secrets={"GATEWAY_KEY": ["ftp://gw.internal"]})


def test_a_default_policy_worker_sends_no_key_over_http_or_to_another_port(redis_url, tmp_path, monkeypatch, llm):
    """The key's host, on plain http or another port: refused before any connection is made."""
    from crewq.config.settings import Settings
    from crewq.scheduler.embedded import in_process_worker
    from crewq.scheduler.supervisor import SupervisorThread
    from crewq.workers.app import create_app
    from crewq.workers.tools import netguard

    from conftest import FAST
    monkeypatch.setattr(netguard, "resolver", lambda host, port: ["127.0.0.1"])  # llm.example -> the listener
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    port = llm.url.rsplit(":", 1)[1]
    # The fleet default's mechanism, with the key bound to a reserved name (no test names a public host).
    app = create_app(Settings(redis_url=redis_url, policy=Policy(secrets={"OPENAI_API_KEY": ["llm.example"]}), **FAST))
    try:
        with SupervisorThread(app, name="policy-supervisor"), in_process_worker(app, concurrency=4):
            statuses = run_all(app, tmp_path, {
                scheme: (f"""
                    runtime: {{llm_provider: openai, model: gpt-4o, api_key: env:OPENAI_API_KEY,
                               base_url: "{scheme}://llm.example:{port}/v1"}}
                    agents: [{{id: a}}]
                    """, "") for scheme in ("http", "https")})
    finally:
        app.close()
    for scheme, status in statuses.items():
        error = status.agents["a"].error or ""
        assert status.status == "failed" and status.agents["a"].attempt == 0, (scheme, status)
        assert f"may be sent to llm.example, not to {scheme}://llm.example:{port} (policy secrets." in error, error
    assert llm.received == []
