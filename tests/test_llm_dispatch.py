"""call_llm: breakers shared through a real Redis, fallbacks, and the scripted provider unchanged."""

from __future__ import annotations

import uuid

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.config.schema import Agent
from crewq.workers.llm.breaker import Breaker, BreakerPolicy
from crewq.workers.llm.dispatch import call_llm
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message

from fakes.llm_servers import FakeLLMServer, Reply, anthropic_error, anthropic_message, openai_completion

POLICY = BreakerPolicy(threshold=3, cooldown=30.0)
OVERLOADED = Reply(status=529, body=anthropic_error("overloaded_error", "Overloaded"))


@pytest.fixture
def redis(redis_url):
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)  # as the ledger makes it
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def primary():
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def fallback():
    with FakeLLMServer() as fake:
        yield fake


AGENT = Agent(id="writer")


def chain(primary: FakeLLMServer, *fallbacks: FakeLLMServer) -> list[LLMConfig]:
    configs = [LLMConfig(provider="anthropic", model="claude-sonnet-4-5", api_key="k1", base_url=primary.url)]
    configs += [LLMConfig(provider="openai", model=f"gpt-4o-{i}", api_key="k2", base_url=f.url)
                for i, f in enumerate(fallbacks)]
    return configs


def ask() -> LLMRequest:
    return LLMRequest(system="s", messages=[Message(role="user", content="hi")], agent_id="writer")


def test_a_529_storm_opens_the_breaker_and_moves_the_agent_to_its_fallback(primary, fallback, redis, prefix,
                                                                           redis_url):
    primary.always(OVERLOADED)
    fallback.always(Reply(body=openai_completion(text="from the fallback")))
    configs = chain(primary, fallback)
    for _ in range(POLICY.threshold):  # the primary fails: the turn would retry it with a countdown
        with pytest.raises(TransientProviderError) as caught:
            call_llm(configs, AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY)
        assert caught.value.status == 529
    assert len(primary.received) == POLICY.threshold and fallback.received == []

    reply = call_llm(configs, AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY)
    assert reply.text == "from the fallback" and reply.provider == "openai"
    assert len(primary.received) == POLICY.threshold  # open: the primary was not called again
    # Another worker of the fleet sees the same breaker.
    other = redis_lib.Redis.from_url(redis_url)  # bytes replies, unlike the ledger's client
    assert Breaker(other, "anthropic", "claude-sonnet-4-5", prefix=prefix, policy=POLICY).allow() == "open"
    other.close()


def test_exhausted_retries_go_to_the_fallbacks(primary, fallback, redis, prefix):
    fallback.queue(Reply(body=openai_completion(text="fb")))
    reply = call_llm(chain(primary, fallback), AGENT, ask(), redis=redis, prefix=prefix, exhausted=True)
    assert reply.text == "fb" and primary.received == []


def test_exhausted_without_fallback_fails_the_turn(primary, redis, prefix):
    with pytest.raises(ProviderError, match="no llm.fallback") as caught:
        call_llm(chain(primary), AGENT, ask(), redis=redis, prefix=prefix, exhausted=True)
    assert caught.value.error_type == "retries_exhausted" and not isinstance(caught.value, TransientProviderError)


def test_a_failing_fallback_moves_on_to_the_next(primary, redis, prefix):
    with FakeLLMServer() as first, FakeLLMServer() as second:
        first.queue(Reply(status=503, body={"error": {"message": "down"}}))
        second.queue(Reply(body=openai_completion(text="second")))
        reply = call_llm(chain(primary, first, second), AGENT, ask(), redis=redis, prefix=prefix, exhausted=True)
    assert reply.text == "second" and reply.model == "gpt-4o-2024-08-06"


def test_every_breaker_open_asks_the_turn_to_wait_for_the_cool_down(primary, fallback, redis, prefix):
    configs = chain(primary, fallback)
    for config in configs:
        breaker = Breaker(redis, config.provider, config.model, prefix=prefix, policy=POLICY)
        for _ in range(POLICY.threshold):
            breaker.failure()
    with pytest.raises(TransientProviderError, match="breaker open") as caught:
        call_llm(configs, AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY)
    assert caught.value.error_type == "circuit_open" and 0 < caught.value.retry_after <= POLICY.cooldown
    assert primary.received == [] and fallback.received == []


def test_after_the_cool_down_one_probe_decides(primary, redis, prefix):
    breaker = Breaker(redis, "anthropic", "claude-sonnet-4-5", prefix=prefix, policy=POLICY)
    for _ in range(POLICY.threshold):
        breaker.failure()
    assert breaker.allow() == "open"
    redis.delete(breaker.keys[1])  # the cool-down passes (its key expires)
    assert breaker.allow() == "probe"
    assert breaker.allow() == "open"  # one probe for the whole fleet

    breaker.release()  # a probe that failed for another reason gives the slot back
    primary.queue(OVERLOADED)  # the probe fails: open again
    with pytest.raises(TransientProviderError):
        call_llm(chain(primary), AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY)
    assert breaker.allow() == "open"

    redis.delete(breaker.keys[1])
    primary.queue(Reply(body=anthropic_message(text="back")))  # the probe succeeds: closed
    assert call_llm(chain(primary), AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY).text == "back"
    assert breaker.allow() == "closed" and redis.exists(*breaker.keys) == 0


def test_errors_that_say_nothing_about_availability_do_not_count(primary, redis, prefix):
    primary.always(Reply(status=400, body=anthropic_error("invalid_request_error")))
    for _ in range(POLICY.threshold + 2):
        with pytest.raises(ProviderError):
            call_llm(chain(primary), AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY)
    assert Breaker(redis, "anthropic", "claude-sonnet-4-5", prefix=prefix, policy=POLICY).allow() == "closed"


def test_a_success_resets_the_count(primary, redis, prefix):
    primary.queue(*[OVERLOADED] * (POLICY.threshold - 1), Reply(body=anthropic_message(text="ok")),
                  *[OVERLOADED] * (POLICY.threshold - 1))
    for _ in range(2 * POLICY.threshold - 1):
        try:
            call_llm(chain(primary), AGENT, ask(), redis=redis, prefix=prefix, policy=POLICY)
        except TransientProviderError:
            pass
    assert Breaker(redis, "anthropic", "claude-sonnet-4-5", prefix=prefix, policy=POLICY).allow() == "closed"


def test_without_redis_there_is_no_breaker(primary):
    primary.always(OVERLOADED)
    for _ in range(POLICY.threshold + 1):
        with pytest.raises(TransientProviderError):
            call_llm(chain(primary), AGENT, ask(), policy=POLICY)
    assert len(primary.received) == POLICY.threshold + 1


def test_an_unreachable_redis_lets_calls_through(primary):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    primary.queue(Reply(body=anthropic_message(text="still here")))
    assert call_llm(chain(primary), AGENT, ask(), redis=dead, policy=POLICY).text == "still here"


def test_the_scripted_provider_plays_exactly_as_written(redis, prefix):
    agent = Agent.model_validate({"id": "a", "script": [
        *[{"error": {"status": 529, "message": "busy"}}] * 6, {"text": "done", "output_tokens": 3}]})
    configs = [LLMConfig(provider="scripted")]
    for index in range(6):  # positional call, as the turn makes it; no breaker for the offline provider
        with pytest.raises(TransientProviderError, match="busy"):
            call_llm(configs, agent, LLMRequest(system="", messages=[], agent_id="a", call_index=index),
                     redis=redis, prefix=prefix)
    reply = call_llm(configs, agent, LLMRequest(system="", messages=[], agent_id="a", call_index=6))
    assert reply.text == "done" and reply.provider == "scripted" and reply.usage.output_tokens == 3


def test_tool_names_the_api_refuses_are_renamed_on_the_wire_and_back(primary):
    # An MCP clash gives `calc.add`; MCP allows dots, Anthropic and OpenAI do not.
    from crewq.workers.llm.types import ToolCall, ToolSchema
    primary.queue(Reply(body=anthropic_message(tool_uses=[("tu_2", "calc__add", {"a": 1}), ("tu_3", "add", {})])))
    schema = {"type": "object", "properties": {}}
    request = LLMRequest(system="s", agent_id="writer", tools=[
        ToolSchema(name="calc.add", description="MCP add", parameters=schema),
        ToolSchema(name="add", description="ours", parameters=schema),
        ToolSchema(name="weird name!", description="", parameters=schema),
        ToolSchema(name="3d-render", description="", parameters=schema)], messages=[
        Message(role="user", content="hi"),
        Message(role="assistant", tool_calls=[ToolCall(id="tu_1", name="calc.add", arguments={})]),
        Message(role="tool", tool_call_id="tu_1", name="calc.add", content="2")])
    reply = call_llm(chain(primary), AGENT, request)

    sent = primary.received[0].body
    assert [t["name"] for t in sent["tools"]] == ["calc__add", "add", "weird_name_", "_3d-render"]
    assert sent["messages"][1]["content"][0]["name"] == "calc__add"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("calc.add", {"a": 1}), ("add", {})]
