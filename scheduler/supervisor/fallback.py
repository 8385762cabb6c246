"""Fallback agents: which standby takes over when the supervisor gives an agent up. Pure: no I/O.

The agents a scheduled agent may be handed to form a tree (`fallback:` lists, cycles refused by
`validate`), walked depth first: a given-up agent's own first fallback, else the next one after it
in the list of the agent it replaced, and so on up to the scheduled agent (the root). Whichever
standby succeeds, its output stands for the root's. A standby already used this run for another
root is passed over; one that stood in for the same root before (a resumed run) runs again as its
next attempt. Nothing left: the run fails, naming the root.
"""

from __future__ import annotations

from dataclasses import dataclass

from crewq.config.states import AgentStatus
from crewq.workers.runspec import RunSpec


@dataclass(frozen=True)
class Handover:
    fallback: str
    stands_for: str  # the root: the scheduled agent whose output the fallback produces
    attempt: int  # the attempt the fallback runs as
    parent: str  # the agent in whose fallback list it was found


def root_of(agent_id: str, states: dict[str, dict]) -> str:
    return states.get(agent_id, {}).get("stands_for") or agent_id


def next_fallback(spec: RunSpec, agent_id: str, states: dict[str, dict]) -> Handover | None:
    root = root_of(agent_id, states)
    node, after = agent_id, ""  # look in node's fallback list, after `after`
    while True:
        names = spec.crew.agent(node).fallback
        for name in names[names.index(after) + 1 if after in names else 0:]:
            attempt = _available(name, root, states.get(name, {}))
            if attempt is not None:
                return Handover(name, root, attempt, node)
        if node == root:
            return None
        node, after = states.get(node, {}).get("fallback_of") or root, node


def _available(name: str, root: str, state: dict) -> int | None:
    attempt = int(state.get("attempt") or 0)
    if state.get("status") in (None, "", AgentStatus.WAITING) and not state.get("stands_for"):
        return attempt
    if state.get("stands_for") == root:  # it stood in for this agent before: its next attempt
        return attempt + 1 if state.get("status") not in (None, "", AgentStatus.WAITING) else attempt
    return None
