"""Concurrency slots as leases that expire: a sorted set of holders scored by when their lease ends.

    {p}:limit:{scope}:slots   zset   holder → expiry (ms, Redis's clock)

Taking a slot drops the expired leases first, so a slot whose worker died (SIGKILL, a lost machine)
frees itself once its lease runs out; nobody has to notice the death. A holder gives its slot back
when its call ends. Redis's own clock (`TIME`) scores the leases, so machines' clocks never disagree.

Why not a library? `limits` counts hits in windows; it has no slot that is held and given back.
`redis-limiters`' Semaphore blocks the caller until a slot frees (a worker slot held while waiting,
which is what a throttled turn must not do) and expires the semaphore's keys as a whole, not each
holder's lease; `python-redis-lock` is a mutex. This is one short Lua script.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

# KEYS: slots. ARGV: holder, limit, lease ms. → -1 when taken, else ms until the earliest lease ends.
_TAKE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  return -1
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(first[2]) - now)
"""

# KEYS: slots. → the live holders (expired leases dropped), each followed by its ms left.
_HOLDERS = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
local found = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #found, 2 do
  out[#out + 1] = found[i]
  out[#out + 1] = tostring(tonumber(found[i + 1]) - now)
end
return out
"""


def take(redis: Any, key: str, holder: str, limit: int, lease: float) -> float | None:
    """Take one of `limit` slots for `lease` seconds: None when taken, else seconds until a lease ends."""
    waited = int(redis.eval(_TAKE, 1, key, holder, limit, max(1, int(lease * 1000))))
    return None if waited < 0 else waited / 1000.0


def give_back(redis: Any, key: str, holder: str) -> None:
    redis.zrem(key, holder)


def holders(redis: Any, key: str) -> dict[str, float]:
    """The live holders → seconds left on their leases."""
    found = redis.eval(_HOLDERS, 1, key)
    return {str(found[i]): int(found[i + 1]) / 1000.0 for i in range(0, len(found), 2)}


def holder_name(host: str, pid: int | None = None) -> str:
    """Who holds a slot: the process, and a token so that two calls of one process are two holders."""
    return f"{host}#{pid or os.getpid()}#{uuid.uuid4().hex[:8]}@{time.time():.0f}"
