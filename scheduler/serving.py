"""Whether the fleet's live workers serve the queues a crew needs, so that no run waits in silence.

A crew needs crewq's control queue (every wave's advance), the turns queue or each agent's own
`queue:`, and the tools queue for agents with tools. A queue is served when a live worker (its
heartbeat is fresh, `crewq.workers.liveness`) consumes it; a worker that does not say its queues
(an older one) counts as serving them all. `crewq run` and `crewq submit` warn with `unserved`, and
`crewq run` checks again while it waits (`Gaps`); the supervisor adds the gaps to the reason of a
run that reaches its deadline.
"""

from __future__ import annotations

import time
from typing import Iterable

from crewq.config.schema import Crew
from crewq.config.settings import Queues
from crewq.config.states import AgentStatus
from crewq.workers.ledger import Ledger
from crewq.workers.runspec import RunSpec


def needed(crew: Crew, queues: Queues, agents: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Queue → the agents (of `agents`, default all) whose work waits in it, in the crew's order."""
    chosen = set(agents) if agents is not None else None
    need: dict[str, list[str]] = {}
    for agent in crew.agents:
        if chosen is not None and agent.id not in chosen:
            continue
        for queue in (agent.queue or queues.turns, queues.control) + ((queues.tools,) if agent.tools else ()):
            need.setdefault(queue, []).append(agent.id)
    return need


NO_WORKER = ""  # the key of `missing` for a fleet with no live worker at all


def missing(need: dict[str, list[str]], workers: dict[str, dict]) -> dict[str, list[str]]:
    """The needed queues no live worker serves (queue → agents); {NO_WORKER: ...} with no worker at all."""
    if not need:
        return {}
    if not workers:
        return {NO_WORKER: sorted({a for agents in need.values() for a in agents})}
    served: set[str] = set()
    for record in workers.values():
        if record.get("queues") is None:
            return {}  # a worker that does not say its queues may serve any of them
        served.update(record["queues"])
    return {queue: agents for queue, agents in need.items() if queue not in served}


def describe(gaps: dict[str, list[str]]) -> list[str]:
    """One line a gap, naming the queue and the agents whose work waits in it."""
    lines = []
    for queue, agents in gaps.items():
        if queue == NO_WORKER:
            lines.append("no live worker on the fleet: nothing runs until one starts (`crewq worker`)")
        else:
            who = f"agent {agents[0]} needs" if len(agents) == 1 else f"agents {', '.join(agents)} need"
            lines.append(f"no live worker serves queue {queue}, which {who} (start one: `crewq worker -Q {queue}`)")
    return lines


def unserved(ledger: Ledger, crew: Crew, queues: Queues, agents: Iterable[str] | None = None) -> list[str]:
    """The lines `describe` gives for the crew (its `agents`) on the fleet as it is now."""
    return describe(missing(needed(crew, queues, agents), ledger.live_workers()))


def run_gaps(ledger: Ledger, spec: RunSpec, queues: Queues) -> list[str]:
    """`unserved` for a run's agents that have not succeeded (yet)."""
    states = ledger.agents(spec.run_id, [a.id for a in spec.crew.agents])
    waiting = [a.id for a in spec.crew.agents if states[a.id].get("status") != AgentStatus.SUCCEEDED]
    return unserved(ledger, spec.crew, queues, waiting) if waiting else []


class Gaps:
    """What `crewq run` says while it waits: the gaps when they change, checked at most every `every`
    seconds. Each check returns the lines to show: a new gap, or a gap that a worker has filled."""

    def __init__(self, ledger: Ledger, crew: Crew, queues: Queues, every: float = 1.0):
        self.ledger, self.need, self.every = ledger, needed(crew, queues), every
        self.current: dict[str, list[str]] = {}
        self.checked: float | None = None

    def check(self, force: bool = False) -> list[str]:
        now = time.monotonic()
        if not force and self.checked is not None and now - self.checked < self.every:
            return []
        self.checked = now
        found = missing(self.need, self.ledger.live_workers())
        lines = describe({q: a for q, a in found.items() if q not in self.current})
        filled = [q for q in self.current if q not in found]
        if filled:
            lines += ["a worker is live now" if q == NO_WORKER else f"a live worker serves queue {q} now"
                      for q in filled if q != NO_WORKER or not found]
        self.current = found
        return lines

    def waits_for(self, agent_id: str | None) -> bool:
        """The agent is named by a gap: its turn starting means a worker took its queue (check at once,
        or a short run could end before the next check and never say so)."""
        return any(agent_id in agents for agents in self.current.values())

    def describe_current(self) -> list[str]:
        return describe(self.current)

    def text(self) -> str:
        """The gaps as they were last checked, for a run's reason ("" when none)."""
        return "; ".join(self.describe_current())
