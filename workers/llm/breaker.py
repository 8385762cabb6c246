"""A circuit breaker per (provider, model), shared by the whole fleet through Redis.

    closed ──(threshold consecutive failures)──▶ open ──(cool-down passes)──▶ half-open
      ▲                                           ▲                              │
      └──────────────(the probe succeeds)─────────┴───(the probe fails)──────────┘

While open every worker fails fast. In half-open exactly one caller in the fleet gets the probe
(`SET NX` with a lease, so a probe whose worker died frees itself); the others still fail fast.

Why not pybreaker (checked: 1.4.1 and its CircuitRedisStorage)? Its storage is a set of separate
GET/SET/INCR commands whose decisions are taken in Python, so two workers can both see "closed"
and both trip it, or both see "half-open" and both probe: the whole fleet probes a provider that
is down. Its half-open probe is per process, not per fleet, it decodes `bytes` (a client made with
`decode_responses=True` breaks it), swallows Redis errors into logs, and wants one long-lived
breaker object per key in every process. The breaker here is two short Lua scripts on three keys,
with Redis key expiry as the clock (no clock skew between machines), and per-call objects.

Keys (one hash tag, so they live together on a Redis Cluster slot):
    {prefix}:breaker:{provider:model}:failures   consecutive failures (expires after `memory`)
    {prefix}:breaker:{provider:model}:open       present while open; its TTL is the cool-down left
    {prefix}:breaker:{provider:model}:probe      the half-open probe's lease
If Redis itself fails the breaker lets the call through (logged): it must not add an outage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import RedisError

from ..ledger.keys import Keys

log = logging.getLogger("crewq.llm.breaker")

Decision = Literal["closed", "probe", "open"]

# KEYS: failures, open, probe. ARGV: threshold, probe lease ms. → 1 closed, 2 probe, 0 open
_ALLOW = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures < tonumber(ARGV[1]) then return 1 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""

# KEYS: failures, open, probe. ARGV: threshold, cool-down ms, memory ms. → 1 if it (re)opened
_FAIL = """
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('DEL', KEYS[3])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int = 5  # consecutive failures that open the breaker
    cooldown: float = 30.0  # seconds open before one probe is let through
    probe_lease: float = 180.0  # a probe not reported within this frees the half-open slot
    memory: float = 600.0  # failures older than this (with no call since) are forgotten
    exempt: frozenset[str] = frozenset({"scripted"})  # providers with no breaker (offline, deterministic)


class Breaker:
    def __init__(self, redis: Any, provider: str, model: str | None, *, prefix: str = "crewq",
                 policy: BreakerPolicy = BreakerPolicy()):
        name = f"{provider}:{model or '-'}"
        self._bind(redis, name, Keys(prefix).breaker(name), policy)

    @classmethod
    def at(cls, redis: Any, name: str, base: str, policy: BreakerPolicy) -> "Breaker":
        """The same breaker on other keys (`base`): an agent's (crewq.workers.agent_breaker)."""
        breaker = cls.__new__(cls)
        breaker._bind(redis, name, base, policy)
        return breaker

    def _bind(self, redis: Any, name: str, base: str, policy: BreakerPolicy) -> None:
        self.redis, self.policy, self.name = redis, policy, name
        self.keys = [f"{base}:failures", f"{base}:open", f"{base}:probe"]

    def allow(self) -> Decision:
        """May a call go now? "probe" means this caller holds the half-open slot."""
        try:
            code = self.redis.eval(_ALLOW, 3, *self.keys, self.policy.threshold, _ms(self.policy.probe_lease))
        except RedisError as exc:
            log.warning("breaker %s: Redis unavailable (%s); letting the call through", self.name, exc)
            return "closed"
        decisions: dict[int, Decision] = {1: "closed", 2: "probe", 0: "open"}
        return decisions[int(code)]

    def success(self, pipe: Any = None) -> None:
        """Close it; with `pipe`, only queue that on the caller's pipeline (no round trip of its own)."""
        if pipe is not None:
            pipe.delete(*self.keys)
            return
        self._safely(lambda: self.redis.delete(*self.keys))

    def failure(self) -> bool:
        """Count a failure; True when this one opened (or re-opened) the breaker."""
        opened = self._safely(lambda: self.redis.eval(_FAIL, 3, *self.keys, self.policy.threshold,
                                                      _ms(self.policy.cooldown), _ms(self.policy.memory)))
        if opened:
            log.warning("breaker %s open for %gs after %d consecutive failures", self.name,
                        self.policy.cooldown, self.policy.threshold)
        return bool(opened)

    def release(self) -> None:
        """Give the probe back without a verdict (the call failed for a reason unrelated to availability)."""
        self._safely(lambda: self.redis.delete(self.keys[2]))

    def retry_in(self) -> float | None:
        """Seconds of cool-down left while open (None if not open or unknown)."""
        ttl = self._safely(lambda: self.redis.pttl(self.keys[1]))
        return ttl / 1000.0 if isinstance(ttl, int) and ttl > 0 else None

    def failures(self) -> int:
        """Consecutive failures counted now (0 if unknown)."""
        count = self._safely(lambda: self.redis.get(self.keys[0]))
        return int(count) if count is not None else 0

    def _safely(self, action: Any) -> Any:
        try:
            return action()
        except RedisError as exc:
            log.warning("breaker %s: Redis unavailable (%s)", self.name, exc)
            return None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
