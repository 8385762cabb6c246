"""Restart policies and budgets: what to do about one failed agent attempt. Pure: no I/O.

    one_for_one   restart only the failed agent, from a clean conversation
    rest_for_one  restart it and every downstream agent that has started or finished
    one_for_all   restart the whole run from wave 0

Budget: at most `max_restarts` restarts of the agent within `restart_window` (Erlang's intensity
and period), at most `max_attempts` attempts of the agent in the run and `run_restart_cap` restarts
in the run whatever the windows say, with exponential backoff. A permanent error is never restarted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from crewq.config.settings import Settings
from crewq.config.words import plural
from crewq.workers.runspec import RunSpec

from ..advance import downstream
from .fallback import next_fallback, root_of


@dataclass(frozen=True)
class Decision:
    action: str  # "restart" | "give_up"
    agent: str
    attempt: int  # the failed attempt
    policy: str
    reason: str
    countdown: float = 0.0
    targets: dict[str, int] = field(default_factory=dict)  # agent → the attempt it restarts as
    from_wave: int = 0  # the wave re-emitted (one_for_all: 0)
    # give_up: the standby handed the work (None: the run fails), the scheduled agent it stands in for,
    # and whose fallback list it came from.
    fallback: str | None = None
    stands_for: str | None = None
    fallback_of: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Decision":
        return cls(**data)


def decide(spec: RunSpec, agent_id: str, attempt: int, states: dict[str, dict], run: dict,
           restart_times: list[float], now: float, settings: Settings, permanent: bool = False,
           breaker_open: bool = False) -> Decision:
    reason = _give_up_reason(spec, agent_id, attempt, states, run, restart_times, now, settings, permanent, breaker_open)
    agent = spec.crew.agent(agent_id)
    base: dict[str, Any] = dict(agent=agent_id, attempt=attempt, policy=agent.restart)
    if reason:
        handover = next_fallback(spec, agent_id, states)
        if handover is None:
            return Decision("give_up", reason=reason, stands_for=root_of(agent_id, states), **base)
        return Decision("give_up", reason=reason, targets={handover.fallback: handover.attempt},
                        from_wave=spec.wave_of(handover.stands_for), fallback=handover.fallback,
                        stands_for=handover.stands_for, fallback_of=handover.parent, **base)
    recent = [t for t in restart_times if now - t < agent.restart_window]
    countdown = min(settings.restart_backoff_max, settings.restart_backoff * 2 ** len(recent))
    scope = _scope(spec, agent_id, agent.restart, states)
    targets = {a: int(states[a].get("attempt") or 0) + 1 for a in scope}
    from_wave = 0 if agent.restart == "one_for_all" else spec.wave_of(root_of(agent_id, states))
    return Decision("restart", reason=f"restart {len(recent) + 1} of {agent.max_restarts} "
                    f"within {agent.restart_window:g}s", countdown=round(countdown, 3), targets=targets,
                    from_wave=from_wave, **base)


def _give_up_reason(spec: RunSpec, agent_id: str, attempt: int, states: dict[str, dict], run: dict,
                    restart_times: list[float], now: float,
                    settings: Settings, permanent: bool, breaker_open: bool) -> str | None:
    """Why the agent is given up, or None: it may be restarted."""
    agent = spec.crew.agent(agent_id)
    recent = [t for t in restart_times if now - t < agent.restart_window]
    if breaker_open:
        return "its breaker is open: no attempt is made until the cool-down ends"
    if permanent:
        return "a permanent error: restarting cannot fix it"
    attempts = attempt + 1 - int(states.get(agent_id, {}).get("first_attempt") or 0)  # since the last resume
    if attempts >= agent.max_attempts:  # a failure slower than the window cannot dodge this one
        return f"attempt cap reached: {attempts} attempts (max_attempts {agent.max_attempts})"
    if len(recent) >= agent.max_restarts:
        return (f"restart budget spent: {plural(len(recent), 'restart')} within "
                f"{agent.restart_window:g}s (max_restarts {agent.max_restarts})")
    if int(run.get("restarts") or 0) >= settings.run_restart_cap:
        return f"the run's restart cap ({settings.run_restart_cap}) is reached"
    return None


def _scope(spec: RunSpec, agent_id: str, policy: str, states: dict[str, dict]) -> list[str]:
    if policy == "one_for_all":
        return [a.id for a in spec.crew.scheduled()]
    if policy == "rest_for_one":
        started = [a for a in downstream(spec, agent_id) if states[a].get("status") not in (None, "", "waiting")]
        return [agent_id] + started
    return [agent_id]
