"""One LLM call for one agent turn: the provider chain (primary, then fallbacks), behind breakers.

The turn task calls `call_llm` and nothing else. A `TransientProviderError` that escapes means
"retry this turn later" (the turn schedules a Celery retry with `retry.countdown`); any other
`ProviderError` fails the turn.

    configs[0] is the primary, configs[1:] the fallbacks, tried in order:
    - a config whose breaker is open is skipped (no call);
    - the primary failing transiently raises at once: the turn retries it with a countdown;
    - once the turn's retries of the primary are used up, the turn calls again with
      `exhausted=True`: the primary is skipped and the fallbacks are tried;
    - a fallback failing transiently moves on to the next one; the last one's error escapes;
    - every breaker open → TransientProviderError(error_type="circuit_open", retry_after=the
      shortest cool-down left), so the turn waits until a probe can go;
    - `exhausted=True` with no fallback → ProviderError(error_type="retries_exhausted").
Every call is first admitted by the operator's fleet limits (`limits.py`): one that must wait raises
`limits.Throttled` (no call made; the turn goes back to its queue with a countdown: fallbacks are
for failures, not for limits), and a 429 with retry-after holds the whole fleet back from that
provider/model.
Only transient errors count against a breaker: a 400 or a malformed reply says nothing about
availability. Nor does a refused connection: it is a fact about one address (often one crew's wrong
`base_url`), while the breaker is shared by every crew of the fleet using that provider and model; it
costs the provider nothing, and the turn's retry limit (2) and the restart budget bound it.
Without `redis` there is no breaker. Providers in `policy.exempt` (the offline
`scripted` one by default) have no breaker either, so scripted crews play exactly as written.
"""

from __future__ import annotations

import logging
from typing import Any

from crewq.config.errors import ConfigError, ProviderError, TransientProviderError
from crewq.config.schema import Agent

from .breaker import Breaker, BreakerPolicy
from .limits import fleet_limits
from .names import WireNames
from .registry import create_provider
from .types import LLMConfig, LLMReply, LLMRequest

log = logging.getLogger("crewq.llm")


def call_llm(configs: list[LLMConfig], agent: Agent, request: LLMRequest, *, redis: Any = None,
             prefix: str = "crewq", exhausted: bool = False, policy: BreakerPolicy | None = None) -> LLMReply:
    """Ask the agent's LLMs in order until one answers (see the module docstring for the rules)."""
    if not configs:
        raise ConfigError("no LLM configured", key=f"agents.{agent.id}.llm")
    policy = policy or BreakerPolicy()
    names = WireNames([t.name for t in request.tools])
    request = names.request(request)
    candidates = list(enumerate(configs))
    if exhausted:
        if len(configs) == 1:
            raise ProviderError(f"retries used up and agent {agent.id!r} has no llm.fallback",
                                provider=configs[0].provider, error_type="retries_exhausted")
        candidates = candidates[1:]
    skipped: list[tuple[str, float]] = []  # (name, cool-down left) of open breakers
    for position, (index, config) in enumerate(candidates):
        last = position == len(candidates) - 1
        breaker = _breaker(redis, config, prefix, policy)
        decision = breaker.allow() if breaker else "closed"
        if breaker and decision == "open":
            skipped.append((breaker.name, breaker.retry_in() or policy.cooldown))
            log.info("agent %s: %s breaker open, skipping it", agent.id, breaker.name)
            continue
        try:
            reply = _complete(redis, prefix, config, agent, request)
        except TransientProviderError as exc:
            if breaker and exc.error_type != "connection_refused":
                breaker.failure()
            if (index == 0 and not exhausted) or last:
                raise
            log.warning("agent %s: fallback %s failed (%s); trying the next one", agent.id, _name(config), exc)
            continue
        except BaseException:
            if breaker and decision == "probe":
                breaker.release()
            raise
        if breaker:
            breaker.success()
        if index > 0:
            log.info("agent %s: answered by fallback %s", agent.id, _name(config))
        return names.reply(reply)
    open_names = ", ".join(name for name, _ in skipped)
    raise TransientProviderError(f"every LLM of agent {agent.id!r} is unavailable (breaker open: {open_names})",
                                 retry_after=min(wait for _, wait in skipped), provider=configs[0].provider,
                                 error_type="circuit_open")


def _complete(redis: Any, prefix: str, config: LLMConfig, agent: Agent, request: LLMRequest) -> LLMReply:
    if redis is None:
        return create_provider(config, agent).complete(request)
    with fleet_limits(redis, prefix).admitted(config.provider, config.model, request, config.max_tokens) as used:
        reply = create_provider(config, agent).complete(request)
        used(reply.usage)
        return reply


def _breaker(redis: Any, config: LLMConfig, prefix: str, policy: BreakerPolicy) -> Breaker | None:
    if redis is None or config.provider in policy.exempt:
        return None
    return Breaker(redis, config.provider, config.model, prefix=prefix, policy=policy)


def _name(config: LLMConfig) -> str:
    return f"{config.provider}:{config.model or '-'}"
