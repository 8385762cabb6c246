"""`advance`: the body of every wave's chord. It reads the ledger, not its arguments, and acts once.

When every agent of the wave has succeeded it emits the next wave, or completes the run after the
last one. `advance` may run more than once for a wave (a repair chord, a redelivery): the wave
marker (SET NX) lets exactly one of them move the run on: the one that claimed it, or a redelivery
of that same task if its worker died before the next wave was sent. It never fails a run: failures go to
the supervisor, which restarts the agent or calls `fail_run`.
"""

from __future__ import annotations

from celery import shared_task

from crewq.config.states import AgentStatus, RunStatus
from crewq.workers.app import ADVANCE_TASK
from crewq.workers.ledger import TERMINAL, Ledger
from crewq.workers.runspec import RunSpec

from .emit import emit_wave


@shared_task(name=ADVANCE_TASK, bind=True)
def advance(self, results, run_id: str, wave: int) -> str:
    ledger = self.app.ledger
    if ledger.run_status(run_id) in TERMINAL:
        return "run ended"
    spec = ledger.spec(run_id)
    states = ledger.agents(run_id, spec.waves[wave])
    if any(s.get("status") != AgentStatus.SUCCEEDED for s in states.values()):
        # A failed agent is the supervisor's to restart or give up on; a restarted one has a repair
        # chord of its own whose body is this same task.
        return "waiting"
    if not ledger.claim_wave(run_id, wave, self.request.id):
        return "already advanced"
    if wave + 1 < len(spec.waves):
        emit_wave(self.app, spec, wave + 1)
        done = f"emitted wave {wave + 1}"
    else:
        complete_run(ledger, spec)
        done = "completed"
    ledger.wave_advanced(run_id, wave)
    return done


def final_output(ledger: Ledger, spec: RunSpec) -> str:
    """One sink: its output. Several: each labelled by its agent id."""
    sinks = spec.sinks()
    states = ledger.agents(spec.run_id, sinks)
    if len(sinks) == 1:
        return states[sinks[0]].get("output", "")
    return "\n\n".join(f"## {a}\n\n{states[a].get('output', '')}" for a in sinks)


def complete_run(ledger: Ledger, spec: RunSpec) -> None:
    ledger.finish_run(spec.run_id, RunStatus.SUCCEEDED, output=final_output(ledger, spec))


def fail_run(ledger: Ledger, spec: RunSpec, agent_id: str, state: dict, last: str | None = None) -> None:
    """The agent is permanently failed: skip everything downstream and fail the run, naming it (and
    `last`, the last of its fallbacks, given up too)."""
    for dependent in downstream(spec, agent_id):
        if ledger.agent(spec.run_id, dependent).get("status") in (AgentStatus.WAITING, None, ""):
            ledger.update_agent(spec.run_id, dependent, status=AgentStatus.SKIPPED, error=f"{agent_id} failed")
            ledger.event(spec.run_id, "agent_skipped", dependent, because=agent_id)
    attempts = int(state.get("attempt") or 0) + 1
    error = f"agent {agent_id} failed after {attempts} attempt{'s' if attempts > 1 else ''}: {state.get('error')}"
    if last:
        tried = [a.id for a in spec.crew.agents if a.standby
                 and ledger.agent(spec.run_id, a.id).get("stands_for") == agent_id]
        error += f"; its fallbacks failed too ({', '.join(tried)}; the last, {last}: " \
                 f"{ledger.agent(spec.run_id, last).get('error')})"
    ledger.finish_run(spec.run_id, RunStatus.FAILED, error=error, failed_agent=agent_id)


def downstream(spec: RunSpec, agent_id: str) -> list[str]:
    """Every transitive dependent of `agent_id`, in plan order."""
    found: set[str] = set()
    frontier = [agent_id]
    while frontier:
        for dependent in spec.dependents(frontier.pop()):
            if dependent not in found:
                found.add(dependent)
                frontier.append(dependent)
    return [a for wave in spec.waves for a in wave if a in found]
