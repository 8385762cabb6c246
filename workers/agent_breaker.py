"""A circuit breaker per agent, across runs of the same crew, counted in Redis for the whole fleet.

The provider breaker's state machine and Lua (`llm.breaker`), on an agent's keys: `failures`
consecutive runs in which the supervisor gave the agent up (restarts within a run are its policy's
business, so one run counts once) open it for `cooldown`; while open, the agent's next attempt fails
at once, before its first LLM call, and the supervisor hands its work to its fallback (none: the run
fails naming the breaker). After the cool-down one run in the fleet probes it (half-open; its
restarts probe too, marked `probe` on the agent's hash); the agent succeeding anywhere closes it,
the probe run giving it up opens it again. A crew is known by its `runtime.name` and a digest of
its definition (`crew_identity`): runs of one crew file share the breakers, whatever their inputs,
and two different crews never do, even when both keep the default name. Editing the file starts
it with closed breakers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator

from crewq.config.schema import Agent, Crew

from .ledger.keys import Keys
from .llm.breaker import Breaker, BreakerPolicy

PROBE_LEASE = 600.0  # a probe attempt whose worker died frees the half-open slot after this (or the agent's timeout)
MEMORY = 7 * 86400.0  # consecutive failures are remembered this long after the last one


def crew_identity(crew: Crew) -> str:
    """"name#digest": the crew's name and 12 hex digits of its definition (env: references unresolved)."""
    return f"{crew.runtime.name}#{hashlib.sha256(crew.model_dump_json().encode()).hexdigest()[:12]}"


def agent_breaker(redis: Any, keys: Keys, crew: Crew, agent: Agent, identity: str | None = None) -> Breaker:
    policy = BreakerPolicy(threshold=agent.breaker.failures, cooldown=agent.breaker.cooldown,
                           probe_lease=max(agent.timeout or PROBE_LEASE, agent.breaker.cooldown),
                           memory=MEMORY, exempt=frozenset())
    identity = identity or crew_identity(crew)
    return Breaker.at(redis, f"{identity}/{agent.id}", keys.agent_breaker(identity, agent.id), policy)


def open_reason(breaker: Breaker, agent: Agent) -> str:
    left = breaker.retry_in()
    when = f"{left:.0f}s of its {agent.breaker.cooldown:g}s cool-down left" if left else "its probe is in flight"
    return (f"the breaker of agent {agent.id!r} is open after {breaker.policy.threshold} consecutive failures "
            f"({when}): no LLM call was made")


@dataclass(frozen=True)
class OpenBreaker:
    crew: str  # its runtime.name
    digest: str  # of its definition (`crew_identity`)
    agent: str
    seconds_left: float | None  # of the cool-down


def open_breakers(redis: Any, keys: Keys) -> Iterator[OpenBreaker]:
    """Every agent breaker of the fleet that is open now (one SCAN; for the metrics)."""
    pattern = keys.agent_breaker("*", "*").replace("{*/*}", "{*}") + ":open"
    for key in redis.scan_iter(match=pattern, count=500):
        name = key[key.index("{") + 1: key.rindex("}")]
        identity, _, agent = name.rpartition("/")
        crew, _, digest = identity.rpartition("#")
        ttl = redis.pttl(key)
        yield OpenBreaker(crew, digest, agent, ttl / 1000.0 if ttl and ttl > 0 else None)


def breakers_of(redis: Any, keys: Keys, crew: Crew) -> dict[str, float | None]:
    """The agents of a crew whose breaker is open (seconds of cool-down left) or half-open (None)."""
    found: dict[str, float | None] = {}
    identity = crew_identity(crew)
    for agent in crew.agents:
        breaker = agent_breaker(redis, keys, crew, agent, identity)
        left = breaker.retry_in()
        if left is not None:
            found[agent.id] = round(left, 1)
        elif breaker.failures() >= agent.breaker.failures:
            found[agent.id] = None
    return found
