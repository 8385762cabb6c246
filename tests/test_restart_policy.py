"""The supervisor's restart policies and budgets (`policy.decide`): pure, so tested without Redis."""

from __future__ import annotations

import textwrap

import pytest

from crewq.config.loader import load_crew_text
from crewq.config.settings import Settings
from crewq.scheduler.plan import waves
from crewq.scheduler.supervisor.policy import Decision, decide
from crewq.workers.runspec import RunSpec

NOW = 1_000_000.0
SETTINGS = Settings(restart_backoff=0.5, restart_backoff_max=4.0, run_restart_cap=10)


def spec_of(text: str) -> RunSpec:
    crew = load_crew_text(textwrap.dedent(text)).crew
    return RunSpec(run_id="r", crew=crew, task="t", waves=waves(crew))


CHAIN = spec_of("""
    runtime: {llm_provider: scripted}
    agents:
      - {id: up, script: [{text: x}]}
      - {id: mid, depends_on: [up], restart: rest_for_one, max_restarts: 3, restart_window: 60s, script: [{text: x}]}
      - {id: low, depends_on: [mid], script: [{text: x}]}
      - {id: side, depends_on: [up], script: [{text: x}]}
      - {id: all, depends_on: [up], restart: one_for_all, script: [{text: x}]}
    """)


def states(**status: str) -> dict[str, dict]:
    found = {a.id: {"status": "waiting", "attempt": "0"} for a in CHAIN.crew.agents}
    for agent, value in status.items():
        found[agent]["status"] = value
    return found


def test_one_for_one_restarts_only_the_agent_with_the_first_backoff():
    decision = decide(CHAIN, "side", 0, states(side="failed"), {}, [], NOW, SETTINGS)
    assert decision == Decision("restart", "side", 0, "one_for_one", "restart 1 of 3 within 60s", countdown=0.5,
                                targets={"side": 1}, from_wave=1)


def test_rest_for_one_restarts_the_dependents_that_started_and_not_the_waiting_ones():
    started = decide(CHAIN, "mid", 0, states(mid="failed", low="running"), {}, [], NOW, SETTINGS)
    assert started.targets == {"mid": 1, "low": 1} and started.from_wave == 1
    waiting = decide(CHAIN, "mid", 0, states(mid="failed"), {}, [], NOW, SETTINGS)
    assert waiting.targets == {"mid": 1}


def test_one_for_all_restarts_every_agent_from_wave_zero():
    decision = decide(CHAIN, "all", 0, states(all="failed"), {}, [], NOW, SETTINGS)
    assert decision.action == "restart" and decision.from_wave == 0
    assert decision.targets == {a.id: 1 for a in CHAIN.crew.agents}


def test_the_backoff_doubles_per_recent_restart_up_to_its_cap():
    recent = [NOW - 3, NOW - 2]
    assert decide(CHAIN, "mid", 2, states(mid="failed"), {}, recent, NOW, SETTINGS).countdown == 2.0
    capped = SETTINGS.model_copy(update={"restart_backoff_max": 1.5})
    assert decide(CHAIN, "mid", 2, states(mid="failed"), {}, recent, NOW, capped).countdown == 1.5


def test_restarts_outside_the_window_do_not_count():
    old = [NOW - 61, NOW - 120, NOW - 300]
    decision = decide(CHAIN, "mid", 3, states(mid="failed"), {}, old, NOW, SETTINGS)
    assert decision.action == "restart" and decision.countdown == 0.5


@pytest.mark.parametrize("restart_times, run, permanent, reason", [
    ([NOW - 30, NOW - 20, NOW - 10], {}, False, "restart budget spent: 3 restarts within 60s (max_restarts 3)"),
    ([], {"restarts": "10"}, False, "the run's restart cap (10) is reached"),
    ([], {}, True, "a permanent error: restarting cannot fix it"),
])
def test_it_gives_up_past_a_budget_or_on_a_permanent_failure(restart_times, run, permanent, reason):
    decision = decide(CHAIN, "mid", 3, states(mid="failed"), run, restart_times, NOW, SETTINGS, permanent=permanent)
    assert (decision.action, decision.reason, decision.targets) == ("give_up", reason, {})


def test_a_decision_survives_its_json_round_trip():
    decision = decide(CHAIN, "mid", 0, states(mid="failed", low="succeeded"), {}, [], NOW, SETTINGS)
    assert Decision.from_json(decision.to_json()) == decision


def test_max_attempts_counts_from_the_last_resume():
    # mid's 5th attempt (attempt 4) reaches the default cap; after a resume from attempt 5 it has 5 again.
    capped = decide(CHAIN, "mid", 4, states(mid="failed"), {}, [], NOW, SETTINGS)
    assert capped.reason == "attempt cap reached: 5 attempts (max_attempts 5)"
    resumed = states(mid="failed")
    resumed["mid"]["first_attempt"] = "5"
    assert decide(CHAIN, "mid", 5, resumed, {}, [], NOW, SETTINGS).action == "restart"
    assert decide(CHAIN, "mid", 9, resumed, {}, [], NOW, SETTINGS).reason == "attempt cap reached: 5 attempts (max_attempts 5)"
