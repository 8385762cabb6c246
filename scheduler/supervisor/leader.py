"""One active supervisor per fleet: a Redis lock with a short TTL, renewed while it lives.

A standby keeps trying to take it; when the active one dies its lock expires and the standby
becomes active within `leader_ttl` seconds.
"""

from __future__ import annotations

import uuid
from typing import cast

import redis

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leadership:
    def __init__(self, client: redis.Redis, key: str, ttl: float, name: str):
        self.client, self.key, self.ttl_ms = client, key, int(ttl * 1000)
        self.token = f"{name}:{uuid.uuid4().hex[:8]}"
        self.is_leader = False
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Renew the lock if we have it, else try to take it. Returns whether we lead now."""
        if self.is_leader:
            self.is_leader = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if not self.is_leader:
            self.is_leader = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.is_leader

    def release(self) -> None:
        if self.is_leader:
            self._release(keys=[self.key], args=[self.token])
            self.is_leader = False

    def holder(self) -> str | None:
        return cast("str | None", self.client.get(self.key))  # decode_responses=True: a str
