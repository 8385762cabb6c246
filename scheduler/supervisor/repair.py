"""Putting a run right: apply a restart decision, end an overdue run.

Every repair is safe to apply twice: agents are reset only up to the decision's target attempt,
and a re-emitted turn resumes from what the ledger recorded.
"""

from __future__ import annotations

import json

from celery import Celery

from crewq.config.states import AgentStatus
from crewq.workers.ledger import Ledger
from crewq.workers.refs import ref_of
from crewq.workers.runspec import RunSpec

from ..advance import fail_run
from ..emit import emit_wave
from .policy import Decision


def apply(app: Celery, ledger: Ledger, spec: RunSpec, decision: Decision) -> None:
    run_id = spec.run_id
    if decision.action == "give_up" and not decision.fallback:
        root = decision.stands_for or decision.agent
        fail_run(ledger, spec, root, ledger.agent(run_id, root),
                 last=decision.agent if decision.agent != root else None)
        return
    states = ledger.agents(run_id, list(decision.targets))
    for agent_id, target in decision.targets.items():
        if int(states[agent_id].get("attempt") or 0) < target:
            ledger.reset_agent(run_id, agent_id, target)
    ledger.forget_waves(run_id, decision.from_wave, len(spec.waves))
    if decision.fallback:  # hand over: the standby runs in the given-up agent's wave, in its place
        ledger.update_agent(run_id, decision.fallback, stands_for=decision.stands_for,
                            fallback_of=decision.fallback_of)
        emit_wave(app, spec, decision.from_wave, agents=[decision.fallback])
    elif decision.policy == "one_for_all":
        revoke_run(app, ledger, run_id)  # the old attempts' tasks would be skipped anyway; save the work
        emit_wave(app, spec, 0, countdown=decision.countdown)
    else:
        emit_wave(app, spec, decision.from_wave, agents=[decision.agent], countdown=decision.countdown)


def revoke_run(app: Celery, ledger: Ledger, run_id: str) -> list[str]:
    """Revoke the tasks of a run that workers hold now (not yet started ones are dropped)."""
    ids = [task_id for task_id, record in ledger.held().items() if held_for(record) == run_id]
    if ids:
        app.control.revoke(ids)
    return ids


def held_for(record: dict) -> str | None:
    """The run of a task a worker holds (a `liveness` record), or None for one that is no run's."""
    ref = ref_of(record["name"], record["args"])
    return ref.run_id if ref is not None else None


def overdue(ledger: Ledger, spec: RunSpec, run: dict, now: float) -> str | None:
    limit = spec.crew.task.max_duration
    if limit and run.get("started_at") and now - float(run["started_at"]) > limit:
        return f"the run's max_duration ({limit:g}s) is exceeded"
    return None


def overdue_agents(ledger: Ledger, spec: RunSpec, now: float) -> list[tuple[str, int, int, str]]:
    """(agent, attempt, turn, error) for running agents past their timeout."""
    found = []
    states = ledger.agents(spec.run_id, [a.id for a in spec.crew.agents])
    for agent in spec.crew.agents:
        state = states[agent.id]
        if agent.timeout and state.get("status") == AgentStatus.RUNNING and state.get("started_at"):
            if now - float(state["started_at"]) > agent.timeout:
                found.append((agent.id, int(state.get("attempt") or 0), int(state.get("turn") or 0),
                              f"agent timeout ({agent.timeout:g}s) exceeded"))
    return found


def restart_times(state: dict) -> list[float]:
    return json.loads(state.get("restart_times") or "[]")
