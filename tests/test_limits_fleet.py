"""Fleet limits on real processes: two `crewq worker`s, one local OpenAI-compatible server that logs
when each request arrives and ends."""

from __future__ import annotations

import time

from crewq.config.loader import load_crew
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.llm import lease
from crewq.workers.llm.limits import fleet_limits

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion
from helpers import write_crew

SCOPE = "openai-compatible/m"


def wave_crew(folder, server, agents: int, name: str = "wave.yaml"):
    lines = [f"runtime: {{llm_provider: openai-compatible, model: m, base_url: \"{server.url}/v1\"}}", "agents:"]
    lines += [f"  - {{id: a{i}}}" for i in range(agents)]
    return write_crew(folder, "\n".join(lines) + "\n", name=name)


def scripted_crew(folder):
    return write_crew(folder, """
        runtime: {llm_provider: scripted}
        agents:
          - {id: quick, script: [{text: "done at once"}]}
        """, name="scripted.yaml")


def wait_until(check, timeout: float = 30.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.02)


def throttled(ledger, run_id):
    return [e for e in ledger.events(run_id, count=None) if e["type"] == "llm_throttled"]


def test_concurrency_one_serves_a_wave_one_call_at_a_time_and_other_crews_go_on(app, ledger, worker_processes,
                                                                                  tmp_path):
    # The limit comes from the workers' environment, as compose would set it.
    env = {"CREWQ_LIMITS": f"{SCOPE}:concurrency=1"}
    worker_processes.start("c1", concurrency=4, env=env)
    worker_processes.start("c2", concurrency=4, env=env)
    limits = fleet_limits(ledger.redis, ledger.keys.prefix)
    wait_until(lambda: limits.get(SCOPE) is not None, what="the CREWQ_LIMITS preset")
    client = Client(app)
    with FakeLLMServer() as server:
        server.always(Reply(body=openai_completion(text="ok"), delay=0.5))
        wave = submit_loaded(app, load_crew(wave_crew(tmp_path, server, 8)))
        wait_until(lambda: throttled(ledger, wave), what="a throttled turn")
        quick = submit_loaded(app, load_crew(scripted_crew(tmp_path)))
        assert client.wait(quick, timeout=30).output == "done at once"
        ended_meanwhile = sum(1 for span in server.spans if span[1] is not None)
        still = ledger.run_status(wave)
        status = client.wait(wave, timeout=90)

    print(f"wave: {len(server.spans)} requests, at most {server.most_in_flight()} in flight, "
          f"{len(throttled(ledger, wave))} llm_throttled events; the scripted crew finished after "
          f"{ended_meanwhile} of 8 requests, the wave still {still}")
    assert status.status == "succeeded"
    assert len(server.spans) == 8 and server.most_in_flight() == 1
    assert ended_meanwhile < 8 and still == "running"  # the scripted crew did not wait for the wave
    events = throttled(ledger, wave)
    assert {e["limit"] for e in events} == {"concurrency"} and all(e["scope"] == SCOPE for e in events)
    started = [e for e in ledger.events(wave, count=None) if e["type"] == "turn_started"]
    assert {e["host"] for e in started} == set(worker_processes.procs)  # both workers served the wave
    assert all(e["retries"] == 0 for e in started)  # a wait for a limit is the same try, never a retry
    assert lease.holders(ledger.redis, f"{ledger.keys.limit(SCOPE)}:slots") == {}


def starts_in_any_window(times: list[float], window: float) -> int:
    """The most of `times` within any half-open interval of `window` seconds."""
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)), default=0)


def test_rpm_lets_no_more_than_n_calls_start_in_any_window(app, ledger, worker_processes, tmp_path):
    worker_processes.start("r1", concurrency=4)
    worker_processes.start("r2", concurrency=4)
    Client(app).limits.set(SCOPE, rpm=3, window=2)
    with FakeLLMServer() as server:
        server.always(Reply(body=openai_completion(text="ok")))
        run_id = submit_loaded(app, load_crew(wave_crew(tmp_path, server, 7)))
        status = Client(app).wait(run_id, timeout=90)
    arrived = [span[0] for span in server.spans]
    # The limiter stamps a call when it admits it; the server (a thread of this busy test process)
    # sees it later, by up to half a second on a loaded machine: any 1.5 s holds at most 3 arrivals.
    # Without the limit all 7 arrive together, and a limit of 4 puts 4 in the first 1.5 s.
    most = starts_in_any_window(arrived, 1.5)
    gaps = [round(b - a, 2) for a, b in zip(sorted(arrived), sorted(arrived)[3:])]
    print(f"rpm=3 per 2s: {len(arrived)} requests, at most {most} in any 1.5s; call i to call i+3: {gaps}s; "
          f"{len(throttled(ledger, run_id))} llm_throttled events")
    assert status.status == "succeeded" and len(arrived) == 7
    assert most == 3
    assert starts_in_any_window(arrived, 60) == 7  # (the check itself can count)
    assert {e["limit"] for e in throttled(ledger, run_id)} == {"rpm"}


def test_a_slot_held_by_a_killed_worker_frees_itself(app, ledger, supervisor, worker_processes, tmp_path):
    # A short read timeout makes the lease short: timeout + LEASE_MARGIN.
    env = {"CREWQ_LLM_READ_TIMEOUT": "3"}
    worker_processes.start("k1", concurrency=4, env=env)
    worker_processes.start("k2", concurrency=4, env=env)
    client = Client(app)
    client.limits.set(SCOPE, concurrency=1)
    slots = f"{ledger.keys.limit(SCOPE)}:slots"
    with FakeLLMServer() as server:
        server.queue(Reply(hang=True))  # the first call never answers: its worker dies holding the slot
        server.always(Reply(body=openai_completion(text="answered after all")))
        run_id = submit_loaded(app, load_crew(wave_crew(tmp_path, server, 1)))
        wait_until(lambda: server.spans, what="the first request")
        host = ledger.agent(run_id, "a0")["hostname"]
        assert len(lease.holders(ledger.redis, slots)) == 1
        worker_processes.kill(host)
        killed_at = time.time()
        status = client.wait(run_id, timeout=60)
    events = ledger.events(run_id, count=None)
    waits = [e for e in events if e["type"] == "llm_throttled" and e["ts"] > killed_at]
    print(f"killed {host}; {len(waits)} llm_throttled waits on the dead slot, then "
          f"{[e['type'] for e in events if e['ts'] > killed_at and e['type'] != 'llm_throttled']}")
    assert status.status == "succeeded" and status.output == "answered after all"
    assert [e for e in events if e["type"] == "requeued"]  # the supervisor gave the turn back
    assert waits and {e["limit"] for e in waits} == {"concurrency"}  # the dead lease held the slot a while
    assert len(server.spans) == 2
    assert lease.holders(ledger.redis, slots) == {}
