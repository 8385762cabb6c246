"""Stalled runs: a run that is quiet with nothing in flight gets its next step sent again.

Redelivery (`redeliver`) covers every message a worker had taken. One gap is left to kombu: a
worker killed between BRPOP popping a message and recording it in `unacked` (a fraction of a
millisecond) loses that message outright, and so does Redis losing its last second of writes.
Such a run would wait for its `max_duration`. Instead, a run whose last event is older than
`stall_after`, of which no live worker holds a task and no queue or `unacked` entry holds a
message, is put back on its feet from the ledger:

- the first wave with an agent that has not succeeded is found (none: the last wave's `advance`);
- agents of it still waiting are emitted again, running ones get their current turn again (it
  resumes from its recorded reply and tool results, so nothing finished is done twice);
- a failed agent is the supervisor's to decide on, so such a run is left alone.
"""

from __future__ import annotations

import logging

from celery import Celery, chord, group

from crewq.config.states import AgentStatus
from crewq.workers.app import ADVANCE_TASK, turn_signature
from crewq.workers.ledger import Ledger
from crewq.workers.refs import AdvanceRef, Ref, TurnRef
from crewq.workers.runspec import RunSpec

from ..emit import emit_wave
from .repair import held_for

log = logging.getLogger("crewq.supervisor")


def waiting_messages(ledger: Ledger, queues: set[str]) -> list[str]:
    """Every message taken by a worker (kombu's `unacked` hash) or waiting in one of the queues, raw.
    Celery's headers carry the arguments as text (argsrepr), so a run id shows in the raw message."""
    pipe = ledger.redis.pipeline(transaction=False)
    pipe.hvals("unacked")
    for name in sorted(queues):
        pipe.lrange(name, 0, -1)
    taken, *queued = pipe.execute()
    return taken + [raw for messages in queued for raw in messages]


def queues_of(spec: RunSpec, queues: list[str]) -> set[str]:
    """The queues the run's messages may wait in: crewq's own and its agents' `queue:`."""
    return set(queues) | {a.queue for a in spec.crew.agents if a.queue}


def in_flight(spec: RunSpec, held: dict, alive: set[str], messages: list[str]) -> bool:
    """Whether anything of this run is held by a live worker, taken, or waiting in a queue."""
    run_id = spec.run_id
    if any(held_for(r) == run_id and r["host"] in alive for r in held.values()):
        return True
    return any(run_id in raw for raw in messages)


def restart_stalled(app: Celery, ledger: Ledger, spec: RunSpec) -> list[Ref]:
    """Send the run's next step again. Returns what was sent (nothing when a failure awaits a decision)."""
    run_id = spec.run_id
    states = ledger.agents(run_id, [a.id for a in spec.crew.agents])
    # A standby handed a given-up agent's work runs in its place: that failure is decided on already.
    stand_ins = {s["stands_for"]: a for a, s in states.items() if s.get("stands_for")
                 and s.get("status") in (None, "", AgentStatus.WAITING, AgentStatus.RUNNING)
                 and states.get(s["stands_for"], {}).get("status") == AgentStatus.FAILED}
    if any(s.get("status") == AgentStatus.FAILED and (s.get("stands_for") or a) not in stand_ins
           for a, s in states.items()):
        return []
    wave = next((n for n, agents in enumerate(spec.waves)
                 if any(states[a].get("status") != AgentStatus.SUCCEEDED for a in agents)), None)
    if wave is None:  # everything succeeded: the last `advance` was lost
        last = len(spec.waves) - 1
        ledger.forget_waves(run_id, last, len(spec.waves))
        app.signature(ADVANCE_TASK, args=([], *AdvanceRef(run_id, last).args())).apply_async()
        return [AdvanceRef(run_id, last)]
    if wave > 0:  # the wave before is done; its advance acted, or was lost acting
        ledger.mark_wave_advanced(run_id, wave - 1)
    sent: list[Ref] = []
    agents = [stand_ins.get(a, a) for a in spec.waves[wave]]  # the stand-in, where one runs
    waiting = [a for a in agents if states[a].get("status") in (None, "", AgentStatus.WAITING)]
    if waiting:
        emit_wave(app, spec, wave, agents=waiting)
        sent += [TurnRef(run_id, a, 0, int(states[a].get("attempt") or 0)) for a in waiting]
    body = app.signature(ADVANCE_TASK, args=AdvanceRef(run_id, wave).args())
    for agent_id in agents:
        if states[agent_id].get("status") == AgentStatus.RUNNING:
            turn, attempt = int(states[agent_id].get("turn") or 0), int(states[agent_id].get("attempt") or 0)
            chord(group([turn_signature(app, spec, agent_id, turn, attempt)]), body).apply_async()
            sent.append(TurnRef(run_id, agent_id, turn, attempt))
    return sent
