"""Operator limits, fleet-wide: LLM calls per window (rpm), tokens per window (tpm) and calls in
flight (concurrency), per provider or per provider/model, kept in Redis and in force on every worker.

    limits = FleetLimits(redis, keys)
    limits.set("openai/gpt-4o", rpm=60, concurrency=4)     # or `crewq limits set`, or CREWQ_LIMITS
    with limits.admitted("openai", "gpt-4o", request) as used:   # raises Throttled: no call is made
        reply = provider.complete(request)
        used(reply.usage)

Before each call (`dispatch.call_llm`) the call is admitted by every limit that covers it: the
provider's and the provider/model's. A call that must wait raises `Throttled` (which limit, how many
seconds); the turn then goes back to its queue with a Celery countdown (`wait_for_limit`), so it
holds no worker slot meanwhile, and an `llm_throttled` event says so.

- rpm: the `limits` library's moving window (exact: no more than rpm calls start in any window;
  the window's oldest entry says when the next one may start).
- tpm: `limits`' sliding-window counter (two counters, so a call of 5,000 tokens costs two keys, not
  5,000 list entries), charged with an estimate before the call (prompt size / 4 + max_tokens) and
  corrected by the reply's usage after it; a failed call gives its estimate back.
- concurrency: a lease that expires (`lease.py`), so a dead worker's slot frees itself.
- a 429 with retry-after holds the whole fleet back from that provider/model for that long (a
  shared "not before" key), not only the turn that got it.

Why `limits` (5.x) and its Redis storage: it shares the fleet's Redis (our connection pool, any URL
redis-py takes), each check is one atomic Lua call, and `get_window_stats` tells when the window
frees, which is the countdown. Its moving window stamps entries with the worker's clock, so machines
need NTP; the leases and the not-before key use Redis's own clock.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, cast

from celery import signals
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from redis.exceptions import RedisError

from crewq.config.errors import ConfigError, CrewqError, TransientProviderError

from ..ledger.keys import Keys
from . import lease
from .types import LLMRequest, Usage

log = logging.getLogger("crewq.llm.limits")

ENV_VAR = "CREWQ_LIMITS"
LEASE_MARGIN = 5.0  # a slot's lease is the call's timeout plus this
CONCURRENCY_POLL = 0.5  # a full slot usually frees when a call ends: look again this soon
OUTPUT_ESTIMATE = 256  # tokens expected of a reply whose max_tokens is not set
EXEMPT_FROM_429 = frozenset({"scripted"})  # as the breaker: scripted errors are a test's, not a provider's
_UNLIMITED = 2 ** 52  # an "acquire" that always succeeds: how a usage correction is added


class Limit(BaseModel):
    """One scope's limits; unset means no such limit."""
    model_config = ConfigDict(frozen=True, extra="forbid")
    rpm: int | None = Field(None, gt=0, description="LLM calls started per window")
    tpm: int | None = Field(None, gt=0, description="tokens (input + output) per window")
    concurrency: int | None = Field(None, gt=0, description="LLM calls in flight at once")
    window: int = Field(60, gt=0, description="seconds of the rpm and tpm windows")

    @model_validator(mode="after")
    def _not_empty(self) -> "Limit":
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            raise ValueError("a limit needs at least one of rpm, tpm, concurrency")
        return self

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("rpm", self.rpm), ("tpm", self.tpm), ("concurrency", self.concurrency))
                 if v is not None]
        return ",".join(parts) + (f",window={self.window}" if self.window != 60 else "")


class Throttled(CrewqError):
    """A signal, not a failure: this call must wait `seconds` for `limit` of `scope` (no call was made)."""

    def __init__(self, scope: str, limit: str, seconds: float):
        self.scope, self.limit, self.seconds = scope, limit, max(float(seconds), 0.05)
        super().__init__(f"{scope}: {limit} limit reached, next call in {self.seconds:.2f}s")


def scope_of(provider: str, model: str | None = None) -> str:
    return f"{provider}/{model}" if model else provider


def check_scope(text: str, key: str = "scope") -> str:
    """PROVIDER or PROVIDER/MODEL (a model may hold '/' and ':' of its own)."""
    provider, _, model = text.strip().partition("/")
    if not provider or any(c.isspace() for c in text.strip()) or (_ and not model):
        raise ConfigError(f"{text!r} is not PROVIDER or PROVIDER/MODEL", key=key)
    return text.strip()


class FleetLimits:
    """The operator's limits in Redis (`{p}:limits`), their state, and admission of one call."""

    def __init__(self, redis: Any, keys: Keys):
        self.redis, self.keys = redis, keys
        # Our own pool: the library's scripts run on the fleet's Redis, whatever its URL.
        self.storage = RedisStorage("redis://", connection_pool=redis.connection_pool,
                                    key_prefix=f"{keys.prefix}:limit")
        self.moving = MovingWindowRateLimiter(self.storage)
        self.sliding = SlidingWindowCounterRateLimiter(self.storage)

    # -- the operator's side: set, clear, list ---------------------------------------------------

    def set(self, scope: str, **values: Any) -> Limit:
        """Set some of a scope's limits; the ones not given keep their value."""
        scope = check_scope(scope)
        old = self.get(scope)
        merged = {**(old.model_dump() if old else {}), **{k: v for k, v in values.items() if v is not None}}
        limit = _limit(merged, key=scope)
        self.redis.hset(self.keys.limits, scope, limit.model_dump_json())
        return limit

    def clear(self, scope: str) -> bool:
        """Remove a scope's limits and their windows; False if it had none."""
        scope = check_scope(scope)
        old = self.get(scope)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(self.keys.limits, scope)
        pipe.delete(self._slots(scope), self._not_before(scope))
        pipe.execute()
        if old and old.rpm:
            self.moving.clear(_item(old.rpm, old.window), scope, "rpm")
        if old and old.tpm:
            self.sliding.clear(_item(old.tpm, old.window), scope, "tpm")
        return old is not None

    def get(self, scope: str) -> Limit | None:
        raw = self.redis.hget(self.keys.limits, scope)
        return Limit.model_validate_json(raw) if raw else None

    def all(self) -> dict[str, Limit]:
        return {scope: Limit.model_validate_json(raw) for scope, raw in sorted(self.redis.hgetall(self.keys.limits).items())}

    def preset(self, env: Mapping[str, str]) -> list[str]:
        """Store the limits of `CREWQ_LIMITS` whose scope has none yet (a worker's start-up): the
        environment presets, `crewq limits set` changes them for good. Returns the scopes stored."""
        stored = []
        for scope, limit in parse_presets(env.get(ENV_VAR, "")).items():
            if self.redis.hsetnx(self.keys.limits, scope, limit.model_dump_json()):
                stored.append(scope)
        return stored

    def usage(self) -> list[dict[str, Any]]:
        """Each limit with its current use: {scope, limit, rpm: [used, max], tpm, concurrency, held_back}."""
        rows = []
        for scope, limit in self.all().items():
            row: dict[str, Any] = {"scope": scope, "limit": limit.model_dump(), "window": limit.window}
            if limit.rpm:
                stats = self.moving.get_window_stats(_item(limit.rpm, limit.window), scope, "rpm")
                row["rpm"] = [limit.rpm - stats.remaining, limit.rpm]
            if limit.tpm:
                stats = self.sliding.get_window_stats(_item(limit.tpm, limit.window), scope, "tpm")
                row["tpm"] = [limit.tpm - stats.remaining, limit.tpm]
            if limit.concurrency:
                row["concurrency"] = [len(lease.holders(self.redis, self._slots(scope))), limit.concurrency]
            row["held_back"] = self._held_back(scope)
            rows.append(row)
        return rows

    # -- the worker's side: admit one call -------------------------------------------------------

    @contextmanager
    def admitted(self, provider: str, model: str | None, request: LLMRequest,
                 max_tokens: int | None = None) -> Iterator[Callable[[Usage], None]]:
        """Admit one call by every limit covering it, or raise `Throttled`. Yields `used(usage)`, to be
        called with the reply's usage. Leaves: slots given back, the token estimate corrected; a 429
        with retry-after raised inside holds the fleet back from this provider/model."""
        own = scope_of(provider, model)
        estimate = estimate_tokens(request, max_tokens)
        holder = lease.holder_name(socket.gethostname())
        slots: list[str] = []  # slot keys taken
        charges: list[tuple[str, Limit, int]] = []  # tokens charged: (scope, limit, estimate)
        try:
            for scope, limit in self._covering(provider, model):
                self._admit(scope, limit, estimate, holder, request.timeout + LEASE_MARGIN, slots, charges)
        except RedisError as exc:  # as the breaker: limits must not add an outage of their own
            log.warning("limits of %s: Redis unavailable (%s); letting the call through", own, exc)
            self._settle(holder, slots, charges, None)
        except BaseException:
            self._settle(holder, slots, charges, None)
            raise
        spent: list[int] = []
        try:
            yield lambda usage: spent.append(usage.input_tokens + usage.output_tokens)
        except TransientProviderError as exc:
            if exc.status == 429 and exc.retry_after and provider not in EXEMPT_FROM_429:
                self.hold_back(own, exc.retry_after)
            raise
        finally:
            self._settle(holder, slots, charges, spent[-1] if spent else None)

    def _covering(self, provider: str, model: str | None) -> list[tuple[str, Limit]]:
        """The limits that cover a call (the provider/model's, the provider's), after checking that no
        429 holds the fleet back from this provider/model. One round trip."""
        own = scope_of(provider, model)
        scopes = [own] + ([provider] if model else [])
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.keys.limits, scopes)
        pipe.pttl(self._not_before(own))
        raws, wait = pipe.execute()
        if wait and int(wait) > 0:
            raise Throttled(own, "retry-after", int(wait) / 1000.0)
        return [(scope, Limit.model_validate_json(raw)) for scope, raw in zip(scopes, raws) if raw]

    def _settle(self, holder: str, slots: list[str], charges: list, tokens: int | None) -> None:
        """Give the slots back; the reply's usage replaces the estimate (None: no call, or it failed,
        and spent nothing; 0: the reply said nothing of usage, the estimate stays)."""
        try:
            for key in slots:
                lease.give_back(self.redis, key, holder)
            for scope, limit, charged in charges:
                actual = charged if tokens == 0 else (tokens or 0)
                self._add_tokens(scope, limit, actual - charged)
        except Exception as exc:  # a slot not given back expires with its lease
            log.warning("limits: could not give back a slot or tokens: %s", exc)

    def hold_back(self, scope: str, seconds: float) -> None:
        """No call to `scope` starts on any worker for `seconds` (a provider's retry-after); a longer
        hold already there is kept."""
        try:
            self.redis.eval(_HOLD_BACK, 1, self._not_before(scope), max(1, int(seconds * 1000)))
        except RedisError as exc:
            log.warning("%s: could not hold the fleet back (%s)", scope, exc)
            return
        log.warning("%s: 429 with retry-after %.1fs: the whole fleet waits", scope, seconds)

    def _admit(self, scope: str, limit: Limit, estimate: int, holder: str, lease_for: float,
               slots: list, charges: list) -> None:
        if limit.concurrency:
            key = self._slots(scope)
            waited = lease.take(self.redis, key, holder, limit.concurrency, lease_for)
            if waited is not None:
                raise Throttled(scope, "concurrency", min(waited, CONCURRENCY_POLL))
            slots.append(key)
        if limit.tpm:
            item, cost = _item(limit.tpm, limit.window), min(estimate, limit.tpm)  # never more than a window
            if not self.sliding.hit(item, scope, "tpm", cost=cost):
                stats = self.sliding.get_window_stats(item, scope, "tpm")
                short = max(cost - stats.remaining, 1)
                wait = max(stats.reset_time - time.time(), limit.window * short / limit.tpm)
                raise Throttled(scope, "tpm", wait)
            charges.append((scope, limit, cost))
        if limit.rpm:
            item = _item(limit.rpm, limit.window)
            if not self.moving.hit(item, scope, "rpm"):
                stats = self.moving.get_window_stats(item, scope, "rpm")
                raise Throttled(scope, "rpm", stats.reset_time - time.time())

    def _add_tokens(self, scope: str, limit: Limit, tokens: int) -> None:
        if tokens:
            item = _item(cast(int, limit.tpm), limit.window)  # charged only on limits with a tpm
            self.storage.acquire_sliding_window_entry(item.key_for(scope, "tpm"), _UNLIMITED, item.get_expiry(),
                                                      tokens)

    def _held_back(self, scope: str) -> float:
        ms = self.redis.pttl(self._not_before(scope))
        return max(int(ms or 0), 0) / 1000.0

    def _slots(self, scope: str) -> str:
        return f"{self.keys.limit(scope)}:slots"

    def _not_before(self, scope: str) -> str:
        return f"{self.keys.limit(scope)}:not_before"


# KEYS: not_before. ARGV: ms. Keeps the later of the two holds.
_HOLD_BACK = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


def _item(amount: int, window: int) -> RateLimitItemPerSecond:
    return RateLimitItemPerSecond(amount, window)


def _limit(values: Mapping[str, Any], key: str) -> Limit:
    try:
        return Limit.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'limit'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems, key=key) from None


def estimate_tokens(request: LLMRequest, max_tokens: int | None = None) -> int:
    """Tokens a call may spend, before it is made: the prompt at 4 characters a token, plus the reply's cap."""
    size = len(request.system)
    for message in request.messages:
        size += len(message.content) + sum(len(json.dumps(c.arguments)) for c in message.tool_calls)
    size += sum(len(t.description) + len(json.dumps(t.parameters)) for t in request.tools)
    return size // 4 + 1 + (max_tokens or OUTPUT_ESTIMATE)


def parse_presets(text: str) -> dict[str, Limit]:
    """`CREWQ_LIMITS`: "openai/gpt-4o:rpm=60,concurrency=4;anthropic:tpm=400000,window=60"."""
    found: dict[str, Limit] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        scope, sep, settings = entry.rpartition(":")
        if not sep:
            raise ConfigError(f"{entry!r} is not PROVIDER[/MODEL]:rpm=N,tpm=N,concurrency=N,window=S", key=ENV_VAR)
        values: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in settings.split(","))):
            name, eq, value = pair.partition("=")
            if not eq or name not in Limit.model_fields:
                raise ConfigError(f"{pair!r} in {entry!r}: expected rpm=, tpm=, concurrency= or window=", key=ENV_VAR)
            values[name] = value
        found[check_scope(scope, key=ENV_VAR)] = _limit(values, key=f"{ENV_VAR} {scope}")
    return found


_cache: dict[tuple[int, str], FleetLimits] = {}


def fleet_limits(redis: Any, prefix: str) -> FleetLimits:
    """One FleetLimits per Redis client and prefix, per process (its scripts are registered once)."""
    key = (id(redis), prefix)
    found = _cache.get(key)
    if found is None or found.redis is not redis:
        found = _cache[key] = FleetLimits(redis, Keys(prefix))
    return found


def wait_for_limit(task: Any, ledger: Any, run_id: str, agent_id: str, turn: int, throttled: Throttled,
                   ceiling: float) -> Exception:
    """The turn goes back to its queue for the limit's wait (no worker slot held meanwhile), as the
    same try: its retry count and its LLM call index stay, so a throttle is never a retry. Returns
    Celery's Retry to raise."""
    from celery.exceptions import Retry

    seconds = min(throttled.seconds, ceiling) * random.uniform(1.0, 1.2)  # spread the waiters out
    ledger.event(run_id, "llm_throttled", agent_id, turn=turn, scope=throttled.scope, limit=throttled.limit,
                 seconds=round(seconds, 3))
    signature = task.signature_from_request(countdown=seconds)  # same task id, same `retries`
    signature.apply_async()
    return Retry(when=seconds, sig=signature)


@signals.worker_ready.connect
def _preset_at_start(sender=None, **_):
    """A worker's start-up stores its environment's `CREWQ_LIMITS` presets (scopes with no limit yet)."""
    if sender is None or not sender.app.settings.limits:
        return
    ledger = sender.app.ledger
    try:
        stored = fleet_limits(ledger.redis, ledger.keys.prefix).preset({ENV_VAR: sender.app.settings.limits})
    except ConfigError as exc:
        log.error("ignoring %s: %s", ENV_VAR, exc)
        return
    if stored:
        log.info("fleet limits preset from %s: %s", ENV_VAR, ", ".join(stored))
