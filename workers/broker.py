"""kombu's Redis transport with one step corrected, so that a worker survives a Redis restart.

The fault (kombu 5.7, celery 5.7; the family of celery#4652, kombu#582, celery#9250): when the
broker connection drops, Celery's consumer calls `connection.collect()` and then `connection.close()`.
`collect()` closes the default channel, whose `close()` first drains the pending BRPOP; with Redis
gone that raises a connection error *before* the channel is marked closed (swallowed), and
`collect()` then detaches the transport (`transport.client = None`). `close()` closes the same
channel again: this time it gets further, drops its pool and asks for a new one to put its unacked
messages back, and building a pool reads `self.connection.client.hostname` from the detached
transport: `AttributeError: 'NoneType' object has no attribute 'hostname'`. An AttributeError is
not a connection error, nothing swallows it, and the worker stops with "Unrecoverable error".

The correction: a channel whose transport is detached raises a connection error when it is asked
for connection parameters, which is the truth (there is no broker to reach) and what every caller
on that path already handles. Nothing is lost: the messages stay in kombu's `unacked` hash in Redis
and go back to their queues by crewq's redelivery once Redis is back.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection is closed (Redis was lost)")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(url: str) -> str | None:
    """What `broker_transport` names for this broker URL: ours for plain Redis, else kombu's choice
    (Sentinel and sockets keep their own transports)."""
    return f"{__name__}:Transport" if urlsplit(url).scheme in ("redis", "rediss") else None
