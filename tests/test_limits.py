"""Fleet limits against a real Redis: rpm, tpm, concurrency leases, 429 hold-back, presets."""

from __future__ import annotations

import time

import pytest
import redis as redis_lib

from crewq.config.errors import ConfigError
from crewq.config.schema import Agent
from crewq.workers.ledger.keys import Keys
from crewq.workers.llm import lease
from crewq.workers.llm.dispatch import call_llm
from crewq.workers.llm.limits import FleetLimits, Throttled, parse_presets
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message, Usage

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion, openai_error


@pytest.fixture
def client(redis_url):
    found = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    yield found
    found.close()


@pytest.fixture
def limits(client):
    return FleetLimits(client, Keys("t"))


def ask(text: str = "hello", timeout: float = 5.0) -> LLMRequest:
    return LLMRequest(system="", messages=[Message(role="user", content=text)], timeout=timeout)


def test_set_merges_and_clear_forgets(limits):
    limits.set("openai/gpt-4o", rpm=60)
    assert limits.set("openai/gpt-4o", concurrency=4).describe() == "rpm=60,concurrency=4"
    assert set(limits.all()) == {"openai/gpt-4o"}
    with pytest.raises(ConfigError, match="at least one of rpm"):
        limits.set("anthropic")
    with pytest.raises(ConfigError, match="rpm: Input should be greater than 0"):
        limits.set("anthropic", rpm=0)
    with pytest.raises(ConfigError, match="not PROVIDER or PROVIDER/MODEL"):
        limits.set("openai/", rpm=1)
    assert limits.clear("openai/gpt-4o") and not limits.clear("openai/gpt-4o")
    assert limits.all() == {}


def test_rpm_says_when_the_window_frees(limits):
    limits.set("p/m", rpm=2, window=30)
    for _ in range(2):
        with limits.admitted("p", "m", ask()):
            pass
    with pytest.raises(Throttled) as caught:
        with limits.admitted("p", "m", ask()):
            pytest.fail("a third call was admitted")
    assert caught.value.limit == "rpm" and caught.value.scope == "p/m"
    assert 25 < caught.value.seconds <= 30  # the oldest call leaves the window then
    assert limits.usage()[0]["rpm"] == [2, 2]


def test_a_provider_wide_limit_covers_every_model(limits):
    limits.set("p", rpm=1, window=30)
    with limits.admitted("p", "a", ask()):
        pass
    with pytest.raises(Throttled, match="p: rpm"):
        with limits.admitted("p", "b", ask()):
            pass


def test_tpm_is_charged_an_estimate_then_the_reply_usage(limits):
    limits.set("p", tpm=1000, window=30)
    with limits.admitted("p", None, ask("x" * 400), max_tokens=100) as used:
        assert limits.usage()[0]["tpm"][0] == 400 // 4 + 1 + 100  # the estimate, while the call runs
        used(Usage(input_tokens=30, output_tokens=20))
    assert limits.usage()[0]["tpm"][0] == 50  # corrected by the reply's usage
    with pytest.raises(RuntimeError):
        with limits.admitted("p", None, ask(), max_tokens=500):
            raise RuntimeError("the call failed")
    assert limits.usage()[0]["tpm"][0] == 50  # a failed call spent nothing
    with limits.admitted("p", None, ask(), max_tokens=900) as used:
        used(Usage(input_tokens=900, output_tokens=40))
    with pytest.raises(Throttled) as caught:
        with limits.admitted("p", None, ask(), max_tokens=100):
            pass
    assert caught.value.limit == "tpm" and caught.value.seconds > 0


def test_a_concurrency_slot_is_given_back_and_throttled_calls_take_nothing(limits, client):
    limits.set("p", concurrency=1, rpm=100)
    with limits.admitted("p", None, ask()):
        with pytest.raises(Throttled) as caught:
            with limits.admitted("p", None, ask()):
                pass
        assert caught.value.limit == "concurrency"
        assert limits.usage()[0]["concurrency"] == [1, 1]
    assert limits.usage()[0]["concurrency"] == [0, 1]
    assert limits.usage()[0]["rpm"][0] == 1  # the throttled call started nothing


def test_a_lease_nobody_gives_back_expires(client):
    key = "t:limit:p:slots"
    assert lease.take(client, key, "dead-worker", 1, lease=0.3) is None
    waited = lease.take(client, key, "other", 1, lease=5)
    assert waited is not None and 0 < waited <= 0.3
    deadline = time.monotonic() + 5
    while lease.take(client, key, "other", 1, lease=5) is not None:
        assert time.monotonic() < deadline, "the dead holder's lease never expired"
        time.sleep(0.05)
    assert set(lease.holders(client, key)) == {"other"}


def test_a_429_with_retry_after_holds_the_whole_fleet_back(client, limits):
    agent = Agent(id="a")
    with FakeLLMServer() as server:
        config = [LLMConfig(provider="openai-compatible", model="m", base_url=f"{server.url}/v1")]
        server.queue(Reply(status=429, body=openai_error("rate_limit_exceeded"), headers={"retry-after": "20"}))
        with pytest.raises(Exception, match="429"):
            call_llm(config, agent, ask(), redis=client, prefix="t")
        # Another turn, on any worker, does not call at all until the retry-after has passed.
        with pytest.raises(Throttled) as caught:
            call_llm(config, agent, ask(), redis=client, prefix="t")
        assert caught.value.limit == "retry-after" and 15 < caught.value.seconds <= 20
        assert len(server.received) == 1
        # Another model of the same provider is not held back.
        server.queue(Reply(body=openai_completion(text="hi")))
        other = [config[0].model_copy(update={"model": "n"})]
        assert call_llm(other, agent, ask(), redis=client, prefix="t").text == "hi"


def test_presets_from_the_environment(limits):
    found = parse_presets("openai/gpt-4o:rpm=60,concurrency=4; ollama/llama3.1:8b:concurrency=1")
    assert found["openai/gpt-4o"].rpm == 60 and found["ollama/llama3.1:8b"].concurrency == 1
    limits.set("openai/gpt-4o", rpm=10)
    stored = limits.preset({"CREWQ_LIMITS": "openai/gpt-4o:rpm=60;anthropic:tpm=1000,window=30"})
    assert stored == ["anthropic"]  # a limit already set (by `crewq limits set`) is kept
    assert limits.get("openai/gpt-4o").rpm == 10 and limits.get("anthropic").window == 30
    with pytest.raises(ConfigError, match="CREWQ_LIMITS.*'rmp=3'"):
        parse_presets("openai:rmp=3")
    with pytest.raises(ConfigError, match="CREWQ_LIMITS"):
        parse_presets("openai")


def test_the_cli_sets_lists_and_clears_limits(redis_url, client):
    from click.testing import CliRunner

    from crewq.scheduler.cli import main
    from crewq.scheduler.runs import Client
    env = {"CREWQ_REDIS_URL": redis_url}
    runner = CliRunner()
    result = runner.invoke(main, ["limits", "set", "openai/gpt-4o", "--rpm", "60", "--concurrency", "4"], env=env)
    assert result.exit_code == 0 and result.output == "openai/gpt-4o: rpm=60,concurrency=4\n"
    assert runner.invoke(main, ["limits", "set", "openai", "--tpm", "1000", "--window", "30s"], env=env).exit_code == 0
    listed = runner.invoke(main, ["limits"], env=env).output.splitlines()
    assert listed == ["openai                       tpm 0/1000  window 30s",
                      "openai/gpt-4o                rpm 0/60  concurrency 0/4  window 60s"]
    bad = runner.invoke(main, ["limits", "set", "openai", "--window", "2.5"], env=env)
    assert bad.exit_code == 2 and "openai: window: Input should be a valid integer" in bad.output
    # The Python API sees the same limits, and its use shows in the list.
    from crewq.config.settings import Settings
    api = Client.from_env(Settings(redis_url=redis_url))
    with api.limits.admitted("openai", "gpt-4o", ask()):
        assert "rpm 1/60  concurrency 1/4" in runner.invoke(main, ["limits"], env=env).output
    assert runner.invoke(main, ["limits", "clear", "openai"], env=env).output == "openai: limits cleared\n"
    assert set(api.limits.all()) == {"openai/gpt-4o"}
    typo = runner.invoke(main, ["limits", "set", "opneai", "--rpm", "5"], env=env)
    assert typo.exit_code == 0 and "warning: no LLM provider here is named 'opneai'" in typo.output


def test_throttled_time_and_current_use_are_prometheus_metrics(ledger):
    from prometheus_client import generate_latest

    from crewq.scheduler.metrics import registry_for
    from crewq.scheduler.progress import Progress, RunView
    from crewq.workers.llm.limits import fleet_limits
    limits = fleet_limits(ledger.redis, ledger.keys.prefix)
    limits.set("openai/gpt-4o", concurrency=2, rpm=60)
    for seconds in (0.5, 1.25):
        ledger.event("r1", "llm_throttled", "a", turn=0, scope="openai/gpt-4o", limit="concurrency", seconds=seconds)
    with limits.admitted("openai", "gpt-4o", ask()):
        text = generate_latest(registry_for(ledger)).decode()
    scope = 'limit="concurrency",scope="openai/gpt-4o"'
    assert f"crewq_limit_in_use{{{scope}}} 1.0" in text and f"crewq_limit_max{{{scope}}} 2.0" in text
    assert 'crewq_limit_in_use{limit="rpm",scope="openai/gpt-4o"} 1.0' in text
    assert f"crewq_llm_throttled_total{{{scope}}} 2.0" in text
    assert f"crewq_llm_throttled_seconds_total{{{scope}}} 1.75" in text
    # `crewq run`'s progress says so, one line per wait.
    import io
    out = io.StringIO()
    Progress(RunView("c", [["a"]]), out=out)({"type": "llm_throttled", "agent": "a", "scope": "openai/gpt-4o",
                              "limit": "concurrency", "seconds": 1.25})
    assert out.getvalue().splitlines()[-1].endswith("a    waits 1.2s for the fleet's concurrency limit of openai/gpt-4o")
