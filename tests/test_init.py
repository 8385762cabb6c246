"""`crewq init`: the scaffold runs by following the next steps it prints, literally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crewq.config.loader import load_crew
from crewq.scheduler.cli import main
from crewq.scheduler.scaffold import STARTERS, files

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion

BIN = Path(sys.executable).parent


def shell_env() -> dict[str, str]:
    """A user's shell: `crewq` on PATH, no fleet configured."""
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def next_steps(output: str) -> list[str]:
    lines = output.splitlines()
    return [line.strip() for line in lines[lines.index("next steps:") + 1:] if line.strip()]


def follow(steps: list[str], cwd: Path, comment) -> list[subprocess.CompletedProcess]:
    """Run each printed command as a shell would; a `# ...` step is an instruction for `comment`."""
    done = []
    for step in steps:
        if step.startswith("#"):
            comment(step)
            continue
        proc = subprocess.run(step, shell=True, cwd=cwd, env=shell_env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, (step, proc.stdout, proc.stderr)
        done.append(proc)
    return done


def init(cwd: Path, provider: str) -> str:
    proc = subprocess.run(f"crewq init d --provider {provider}", shell=True, cwd=cwd, env=shell_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_scripted_scaffold_runs_by_its_printed_steps(tmp_path):
    output = init(tmp_path, "scripted")
    steps = next_steps(output)
    assert steps == ["crewq validate d/crew.yaml", "crewq run d/crew.yaml"]
    runs = follow(steps, tmp_path, comment=lambda step: pytest.fail(f"nothing to set, yet: {step}"))
    assert runs[-1].stdout.startswith("A short brief about tides")
    assert (tmp_path / "d/out/brief.md").read_text().endswith("facts.\n")


def test_openai_scaffold_runs_against_a_local_server_at_the_documented_base_url(tmp_path):
    output = init(tmp_path, "openai")
    crew_file = tmp_path / "d/crew.yaml"
    assert "  base_url: https://api.openai.com/v1\n" in crew_file.read_text()
    assert "BASE_URL" not in (tmp_path / "d/.env.example").read_text()
    steps = next_steps(output)
    assert steps == ["cp d/.env.example d/.env", "# in d/.env, set OPENAI_API_KEY",
                     "crewq validate d/crew.yaml", "crewq run d/crew.yaml"]
    with FakeLLMServer() as server:
        server.always(Reply(body=openai_completion(text="a brief from the fake", usage=(20, 5))))

        def set_variables(step: str) -> None:
            assert step == "# in d/.env, set OPENAI_API_KEY"
            env_file = tmp_path / "d/.env"
            text = env_file.read_text()
            text = text.replace("OPENAI_API_KEY=\n", "OPENAI_API_KEY=sk-init-test\n")
            env_file.write_text(text)
            # The root the template documents (with /v1), here the local fake's.
            crew_file.write_text(crew_file.read_text().replace("https://api.openai.com/v1", f"{server.url}/v1"))

        runs = follow(steps, tmp_path, comment=set_variables)
    assert runs[-1].stdout.strip() == "a brief from the fake"
    assert [r.path for r in server.received] == ["/v1/chat/completions"] * 2
    assert server.received[0].headers["authorization"] == "Bearer sk-init-test"
    assert server.received[0].body["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("provider", sorted(STARTERS))
def test_every_starter_is_a_valid_crew_without_placeholders(tmp_path, provider):
    for name, text in files(provider).items():
        (tmp_path / name).write_text(text)
    loaded = load_crew(tmp_path / "crew.yaml")
    assert "{" not in loaded.crew.task.input
    assert loaded.crew.runtime.llm_provider == provider and loaded.crew.runtime.name == "my-crew"
    assert loaded.crew.runtime.env_file == ".env"
    for variable in STARTERS[provider].to_set:
        assert f"{variable}=" in (tmp_path / ".env.example").read_text()
        assert f"env:{variable}" in (tmp_path / "crew.yaml").read_text()
    validated = CliRunner().invoke(main, ["validate", str(tmp_path / "crew.yaml")])
    assert validated.exit_code == 0, validated.output


def test_init_never_overwrites_and_still_prints_the_steps(tmp_path):
    (tmp_path / "crew.yaml").write_text("mine\n")
    result = CliRunner().invoke(main, ["init", str(tmp_path), "--provider", "anthropic"])
    assert result.exit_code == 0, result.output
    assert f"kept     {tmp_path / 'crew.yaml'} (exists)" in result.output
    assert (tmp_path / "crew.yaml").read_text() == "mine\n"
    assert "ANTHROPIC_API_KEY=" in (tmp_path / ".env.example").read_text()
    assert f"# in {tmp_path / '.env'}, set ANTHROPIC_API_KEY" in next_steps(result.output)


def test_an_unknown_provider_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path), "--provider", "openia"])
    assert result.exit_code == 2 and "openia" in result.output
    assert not (tmp_path / "crew.yaml").exists()


KEYS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


@pytest.mark.parametrize("provider", sorted(KEYS) + ["ollama"])
def test_a_starter_passes_a_default_policy_fleets_checks(tmp_path, provider, monkeypatch):
    """What a default-policy worker checks before it sends anything (the review's `policy env_vars`
    refusal came from here): every env: reference is allowed, the key may go to its base_url, and
    only a local Ollama needs the operator's allow_private_addresses."""
    from crewq.config.policy import GuardedEnv, Policy
    from crewq.workers.llm import outbound
    from crewq.workers.llm.chain import llm_chain
    from crewq.workers.llm.registry import create_provider
    from crewq.workers.tools import netguard
    monkeypatch.setattr(netguard, "resolver", lambda host, port: ["93.184.215.14"])  # public; never connected to
    for name, text in files(provider).items():
        (tmp_path / name).write_text(text)
    crew = load_crew(tmp_path / "crew.yaml").crew
    policy = Policy(allow_private_addresses=provider == "ollama")
    env = GuardedEnv({KEYS[provider]: "k"} if provider in KEYS else {}, policy)
    for agent in crew.agents:
        [config] = llm_chain(crew, agent, env)
        provider_ = create_provider(config, agent)
        outbound.check(config, provider_.url("/v1/chat/completions"))  # type: ignore[attr-defined]
    assert "CREWQ_REDIS_URL" not in (tmp_path / ".env.example").read_text()  # crewq never reads it from there
