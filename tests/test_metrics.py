"""crewq's own Prometheus metrics: counted in Redis as events are written, served from the ledger."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from crewq.scheduler.metrics import registry_for, serve_metrics
from crewq.workers.ledger.metrics import field, parse_field

from helpers import run_crew, write_crew


def scrape(registry) -> dict[tuple[str, tuple], float]:
    from prometheus_client import generate_latest
    return samples_of(generate_latest(registry).decode())


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_field_names_round_trip_awkward_label_values():
    name, labels = parse_field(field("crewq_x_total", model="a,b=c|d%e", tool="mcp.search"))
    assert name == "crewq_x_total"
    assert labels == {"model": "a,b=c|d%e", "tool": "mcp.search"}


def test_events_become_counters_and_histograms(ledger):
    run = "r1"
    ledger.event(run, "run_submitted", name="x", waves=[["a"]])
    ledger.event(run, "turn_started", "a", turn=0, host="w1", attempt=0)
    ledger.event(run, "llm_call", "a", turn=0, provider="anthropic", model="claude-x", input_tokens=100,
                 output_tokens=20, cost_usd=0.0125, seconds=1.5, tool_calls=["read_file"])
    ledger.event(run, "tool_call", "a", turn=0, index=0, name="read_file")
    ledger.event(run, "tool_result", "a", turn=0, index=0, name="read_file", is_error=False,
                 started_at=10.0, finished_at=10.2, chars=5)
    ledger.event(run, "tool_result", "a", turn=0, index=1, name="web_search", is_error=True,
                 started_at=10.0, finished_at=10.0, chars=0)
    ledger.event(run, "tool_skipped", "a", turn=0, index=2, name="web_search", reason="budget")
    ledger.event(run, "agent_succeeded", "a", turns=2, attempt=0, seconds=42.0)
    ledger.event(run, "agent_failed", "b", turn=0, attempt=0, error="boom")
    ledger.event(run, "decision", "b", action="restart", policy="one_for_one", failed_attempt=0)
    ledger.event(run, "decision", "b", action="give_up", policy="one_for_one", failed_attempt=1)
    ledger.event(run, "run_finished", status="failed")

    got = scrape(registry_for(ledger))
    assert got[("crewq_runs_submitted_total", ())] == 1
    assert got[("crewq_runs_finished_total", (("status", "failed"),))] == 1
    assert got[("crewq_turns_total", (("agent", "a"),))] == 1
    llm = (("model", "claude-x"), ("provider", "anthropic"))
    assert got[("crewq_llm_calls_total", llm)] == 1
    assert got[("crewq_llm_tokens_total", (("direction", "input"),) + llm)] == 100
    assert got[("crewq_llm_tokens_total", (("direction", "output"),) + llm)] == 20
    assert got[("crewq_llm_cost_usd_total", llm)] == 0.0125
    assert got[("crewq_llm_seconds_count", llm)] == 1
    assert got[("crewq_llm_seconds_bucket", (("le", "1.0"),) + llm)] == 0
    assert got[("crewq_llm_seconds_bucket", (("le", "2.5"),) + llm)] == 1
    assert got[("crewq_tool_calls_total", (("status", "ok"), ("tool", "read_file")))] == 1
    assert got[("crewq_tool_calls_total", (("status", "error"), ("tool", "web_search")))] == 1
    assert got[("crewq_tool_calls_total", (("status", "skipped"), ("tool", "web_search")))] == 1
    assert abs(got[("crewq_tool_seconds_sum", (("tool", "read_file"),))] - 0.2) < 1e-9
    assert got[("crewq_agents_finished_total", (("agent", "a"), ("status", "succeeded")))] == 1
    assert got[("crewq_agents_finished_total", (("agent", "b"), ("status", "failed")))] == 1
    assert got[("crewq_agent_seconds_sum", (("agent", "a"),))] == 42.0
    assert got[("crewq_agent_seconds_bucket", (("agent", "a"), ("le", "30.0")))] == 0
    assert got[("crewq_agent_seconds_bucket", (("agent", "a"), ("le", "60.0")))] == 1
    assert got[("crewq_agent_seconds_bucket", (("agent", "a"), ("le", "+Inf")))] == 1
    assert got[("crewq_restarts_total", (("policy", "one_for_one"),))] == 1
    assert got[("crewq_decisions_total", (("action", "give_up"), ("policy", "one_for_one")))] == 1
    assert got[("crewq_events_total", (("type", "llm_call"),))] == 1
    assert got[("crewq_ledger_up", ())] == 1
    assert got[("crewq_runs_active", ())] == 0
    assert got[("crewq_llm_retries_total", ())] == 0  # known counters are there before their first event


def test_a_run_on_a_worker_is_counted_and_served_over_http(worker, ledger, tmp_path):
    (tmp_path / "notes.md").write_text("the sea", encoding="utf-8")
    crew = write_crew(tmp_path, """
        runtime: {name: counted, llm_provider: scripted, model: s1}
        tools: [{name: read_file, base_dir: .}]
        agents:
          - id: reader
            tools: [read_file]
            script:
              - {tool_calls: [{name: read_file, arguments: {path: notes.md}},
                              {name: read_file, arguments: {path: missing.md}}], input_tokens: 7, output_tokens: 3}
              - {text: done, input_tokens: 11, output_tokens: 5}
          - id: writer
            depends_on: [reader]
            script: [{text: written}]
        """)
    assert run_crew(worker, crew).status == "succeeded"

    server = serve_metrics(ledger, 0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as reply:
            assert reply.status == 200
            got = samples_of(reply.read().decode())
    finally:
        server.shutdown()
        server.server_close()
    assert got[("crewq_runs_finished_total", (("status", "succeeded"),))] == 1
    assert got[("crewq_llm_calls_total", (("model", "s1"), ("provider", "scripted")))] == 3
    assert got[("crewq_llm_tokens_total", (("direction", "input"), ("model", "s1"), ("provider", "scripted")))] >= 18
    assert got[("crewq_tool_calls_total", (("status", "ok"), ("tool", "read_file")))] == 1
    assert got[("crewq_tool_calls_total", (("status", "error"), ("tool", "read_file")))] == 1
    assert got[("crewq_turns_total", (("agent", "reader"),))] == 2
    assert got[("crewq_agent_turns_sum", (("agent", "reader"),))] == 2
    assert got[("crewq_agent_seconds_count", (("agent", "writer"),))] == 1
    assert got[("crewq_workers_alive", ())] >= 1
    assert not any(name.startswith("python_") or name.startswith("process_") for name, _ in got)


def test_a_scrape_without_redis_reports_the_ledger_down(ledger):
    ledger.redis.hset(ledger.keys.metrics, "crewq_turns_total|agent=a", 1)
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    down = type(ledger)(redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)), ledger.keys)
    got = scrape(registry_for(down))
    assert got == {("crewq_ledger_up", ()): 0}


def observe(ledger, finished_at: float) -> None:
    """A tool call's result that took `finished_at` seconds."""
    ledger.event("r1", "tool_result", "a", turn=0, index=0, name="t", is_error=False, chars=1, started_at=0.0,
                 finished_at=finished_at)


def test_a_histogram_observation_is_one_bin_and_the_reader_accumulates(ledger):
    observe(ledger, 0.02)  # the 0.05 bin
    observe(ledger, 0.07)  # the 0.1 bin
    observe(ledger, 99.0)  # over the last bound
    raw = ledger.redis.hgetall(ledger.keys.metrics)
    bins = {k: v for k, v in raw.items() if k.startswith("crewq_tool_seconds_bin")}
    assert sorted(bins.values()) == ["1", "1", "1"]  # one field written per observation, not one per bucket
    assert not any(k.startswith("crewq_tool_seconds_bucket") or k.startswith("crewq_tool_seconds_count")
                   for k in raw)
    got = scrape(registry_for(ledger))
    tool = (("tool", "t"),)
    assert got[("crewq_tool_seconds_bucket", (("le", "0.01"),) + tool)] == 0
    assert got[("crewq_tool_seconds_bucket", (("le", "0.05"),) + tool)] == 1
    assert got[("crewq_tool_seconds_bucket", (("le", "0.1"),) + tool)] == 2
    assert got[("crewq_tool_seconds_bucket", (("le", "60.0"),) + tool)] == 2
    assert got[("crewq_tool_seconds_bucket", (("le", "+Inf"),) + tool)] == 3
    assert got[("crewq_tool_seconds_count", tool)] == 3


def test_events_counted_by_their_own_counter_are_written_once_and_still_served_by_type(ledger):
    ledger.event("r1", "tool_result", "a", turn=0, index=0, name="t", is_error=True, chars=1, started_at=0.0,
                 finished_at=0.1)
    ledger.event("r1", "tool_skipped", "a", turn=0, index=1, name="t", reason="over the budget")
    ledger.event("r1", "tool_call", "a", turn=0, index=2, name="t")  # no counter of its own: crewq_events_total is written
    raw = ledger.redis.hgetall(ledger.keys.metrics)
    assert [k for k in raw if k.startswith("crewq_events_total")] == ["crewq_events_total|type=tool_call"]
    got = scrape(registry_for(ledger))
    for type_ in ("tool_result", "tool_skipped", "tool_call"):
        assert got[("crewq_events_total", (("type", type_),))] == 1


def test_labels_a_crew_chooses_are_capped_and_the_metrics_hash_stops_growing(ledger):
    from crewq.workers.ledger.metrics import LABEL_CAP

    def a_crew_of(first: int, count: int) -> None:
        for i in range(first, first + count):
            ledger.event("r", "turn_started", f"a{i}", turn=0, host="w1", attempt=0)
            ledger.event("r", "llm_call", f"a{i}", turn=0, provider="openai", model=f"m{i}", input_tokens=1,
                         output_tokens=1, cost_usd=0.5, seconds=1.0)
            ledger.event("r", "tool_result", f"a{i}", turn=0, index=0, name=f"t{i}", is_error=False,
                         started_at=1.0, finished_at=2.0, chars=1)
            ledger.event("r", "agent_succeeded", f"a{i}", turns=1, attempt=0, seconds=3.0)

    a_crew_of(0, LABEL_CAP + 50)
    size = ledger.redis.hlen(ledger.keys.metrics)
    got = scrape(registry_for(ledger))
    for metric, label in [("crewq_turns_total", "agent"), ("crewq_llm_calls_total", "model"),
                          ("crewq_tool_calls_total", "tool")]:
        values = {dict(labels)[label]: n for (name, labels), n in got.items() if name == metric}
        first = {f"{label[0]}{i}" for i in range(LABEL_CAP)}  # a0.., m0.., t0..: the first the fleet saw
        assert set(values) == first | {"other"}, (metric, sorted(values)[:5])
        assert values["other"] == 50 and all(n == 1 for v, n in values.items() if v != "other")
    assert got[("crewq_agent_seconds_count", (("agent", "other"),))] == 50
    assert got[("crewq_llm_cost_usd_total", (("model", "other"), ("provider", "openai")))] == 25.0
    assert sum(1 for name, _ in got if name == "crewq_agent_seconds_bucket") == (LABEL_CAP + 1) * 11
    a_crew_of(10_000, 300)  # another crew, all new names: counted, and not one field more
    assert ledger.redis.hlen(ledger.keys.metrics) == size
    assert scrape(registry_for(ledger))[("crewq_turns_total", (("agent", "other"),))] == 350


def test_a_sample_with_two_capped_labels_folds_each_on_its_own(ledger):
    from crewq.workers.ledger.metrics import LABEL_CAP
    for i in range(LABEL_CAP - 1):
        ledger.event("r", "turn_started", f"a{i}", turn=0, host="w1", attempt=0)
    # One agent id is left under the cap: the given-up agent takes it, its fallback is one too many.
    ledger.event("r", "handed_over", "late", fallback="standby,x=y", stands_for="late", failed_attempt=0)
    got = scrape(registry_for(ledger))
    assert got[("crewq_handovers_total", (("agent", "late"), ("fallback", "other")))] == 1
    name, labels = parse_field(field("crewq_x_total", agent="nul\x00here"))
    assert labels == {"agent": "nul\x00here"} and "\x00" not in field("crewq_x_total", agent="nul\x00here")
