"""The ledger's guarded writes that carry their event: a write and the event it earns go in one
script, and only the call whose write won appends the event and counts it."""

from __future__ import annotations

from crewq.config.states import AgentStatus, RunStatus

RUN, AGENT = "r1", "a"


def started(ledger):
    ledger.event(RUN, "run_submitted", create=True, name="x", waves=[[AGENT]])
    ledger.set_run(RUN, status=RunStatus.RUNNING)
    ledger.update_agent(RUN, AGENT, status=AgentStatus.RUNNING, attempt=0)


def types(ledger) -> list[str]:
    return [e["type"] for e in ledger.events(RUN)]


def metric(ledger, name: str) -> dict[str, str]:
    return {k: v for k, v in ledger.redis.hgetall(ledger.keys.metrics).items() if k.startswith(name)}


def test_a_tool_result_recorded_twice_keeps_the_first_and_one_event(ledger):
    started(ledger)
    event = {"turn": 0, "index": 0, "name": "list_files", "is_error": False, "started_at": 1.0,
             "finished_at": 1.5, "chars": 2}
    assert ledger.record_tool_result(RUN, AGENT, 0, 0, 0, {"content": "first"}, event) is True
    assert ledger.record_tool_result(RUN, AGENT, 0, 0, 0, {"content": "second"}, event) is False
    assert ledger.history(RUN, AGENT, 0, 0)[1] == {"0:0": {"content": "first"}}
    assert types(ledger).count("tool_result") == 1
    assert list(metric(ledger, "crewq_tool_calls_total").values()) == ["1"]
    assert ledger.redis.ttl(ledger.keys.results(RUN, AGENT)) > 0  # index 0 sets the hash's TTL


def test_an_llm_reply_with_its_usage_and_event_is_recorded_once(ledger):
    started(ledger)
    event = {"turn": 0, "provider": "scripted", "model": "m", "input_tokens": 3, "output_tokens": 4,
             "cost_usd": 0.5, "seconds": 0.2, "tool_calls": []}
    assert ledger.record_call(RUN, AGENT, 0, 0, {"text": "one"}, event, (3, 4, 0.5)) == ("won", {"text": "one"})
    assert ledger.record_call(RUN, AGENT, 0, 0, {"text": "two"}, event, (3, 4, 0.5)) == ("lost", {"text": "one"})
    assert ledger.reply(RUN, AGENT, 0, 0) == {"text": "one"}
    assert types(ledger).count("llm_call") == 1
    for hash_ in (ledger.run(RUN), ledger.agent(RUN, AGENT)):
        assert (hash_["input_tokens"], hash_["output_tokens"], hash_["llm_calls"]) == ("3", "4", "1")
        assert float(hash_["cost_usd"]) == 0.5
    assert sum(int(v) for v in metric(ledger, "crewq_llm_calls_total").values()) == 1


def test_an_llm_reply_after_the_run_ended_is_not_recorded(ledger):
    started(ledger)
    ledger.set_run(RUN, status=RunStatus.CANCELLED)
    event = {"turn": 0, "provider": "scripted", "model": "m", "input_tokens": 1, "output_tokens": 1,
             "cost_usd": None, "seconds": 0.1, "tool_calls": []}
    assert ledger.record_call(RUN, AGENT, 0, 0, {"text": "late"}, event, (1, 1, None)) == ("ended", None)
    assert ledger.reply(RUN, AGENT, 0, 0) is None
    assert "llm_call" not in types(ledger)
    assert "llm_calls" not in ledger.agent(RUN, AGENT)


def test_a_settlement_with_its_event_happens_once_and_not_for_a_stale_attempt(ledger):
    started(ledger)
    done = ("agent_succeeded", {"turns": 1, "attempt": 0, "seconds": 1.0})
    assert ledger.settle_agent(RUN, AGENT, 1, AgentStatus.SUCCEEDED, event=done, output="x") is False  # stale
    assert ledger.settle_agent(RUN, AGENT, 0, AgentStatus.SUCCEEDED, event=done, output="x") is True
    assert ledger.settle_agent(RUN, AGENT, 0, AgentStatus.FAILED, event=done, error="late") is False
    assert ledger.agent(RUN, AGENT)["status"] == AgentStatus.SUCCEEDED
    assert types(ledger).count("agent_succeeded") == 1
    assert sum(int(v) for v in metric(ledger, "crewq_agents_finished_total").values()) == 1


def test_a_settlement_event_for_a_run_whose_stream_is_gone_is_dropped(ledger):
    ledger.update_agent(RUN, AGENT, status=AgentStatus.RUNNING, attempt=0)  # no stream: never submitted here
    done = ("agent_succeeded", {"turns": 1, "attempt": 0, "seconds": 1.0})
    assert ledger.settle_agent(RUN, AGENT, 0, AgentStatus.SUCCEEDED, event=done, output="x") is True
    assert not ledger.redis.exists(ledger.keys.events(RUN))  # the stream is not created by it


def test_a_ledger_serves_more_threads_than_redis_pys_default_pool_of_100(redis_url):
    from crewq.workers.ledger import Ledger
    pool = Ledger.from_url(redis_url).redis.connection_pool
    held = [pool.get_connection() for _ in range(101)]  # redis-py's default pool refuses the 101st
    try:
        assert len({id(c) for c in held}) == 101
    finally:
        for connection in held:
            pool.release(connection)
