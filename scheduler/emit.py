"""Emitting: a wave becomes `chord(group(agent_turn ...), advance(run, wave))` over Redis."""

from __future__ import annotations

from celery import chord, group

from crewq.workers.app import ADVANCE_TASK, CrewqApp, turn_signature
from crewq.workers.refs import AdvanceRef
from crewq.workers.runspec import RunSpec


def emit_wave(app: CrewqApp, spec: RunSpec, wave: int, agents: list[str] | None = None,
              countdown: float = 0.0) -> None:
    """Start `agents` (default: the whole wave) at their current attempt; the body advances the run.
    A repair emits the same chord for the agents it restarts (after `countdown`, its backoff)."""
    ledger = app.ledger
    agents = agents or spec.waves[wave]
    states = ledger.agents(spec.run_id, agents)
    header = group(turn_signature(app, spec, a, 0, int(states[a].get("attempt") or 0)).set(
        **({"countdown": countdown} if countdown else {})) for a in agents)
    ledger.event(spec.run_id, "wave_emitted", wave=wave, agents=agents, countdown=countdown)
    chord(header, app.signature(ADVANCE_TASK, args=AdvanceRef(spec.run_id, wave).args())).apply_async()
