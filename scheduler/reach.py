"""Reaching the fleet's Redis: its URL checked and masked for messages, and a long-running service
(`crewq worker`, `supervisor`, `beat`) that waits for a Redis that does not answer yet.

A malformed URL never gets better: the CLI ends at once with exit code 3 (`cli/__init__.py`).
An unreachable Redis at a service's start is waited for instead of exiting. Why: compose (or
systemd, or Kubernetes) starts Redis and the services together; `depends_on` with a healthcheck
covers one machine only, not a workers-only machine whose Redis is elsewhere or a Redis that is
restarting, and a service that exits turns a late Redis into a crash loop with a banner and a
traceback each time. So a service says once which Redis it cannot reach (the password masked),
then one short line per attempt, with a pause that grows to RETRY_MAX, and starts as soon as Redis
answers. Commands that do one thing (`status`, `submit`, `run`) keep exiting with code 3.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator
from urllib.parse import urlsplit

REDIS_SCHEMES = ("redis", "rediss", "unix")
RETRY_FIRST, RETRY_MAX = 1.0, 10.0  # seconds between attempts: doubling from the first to the most

log = logging.getLogger("crewq.fleet")


def masked(url: str) -> str:
    """The URL with its password replaced, for messages; also a malformed one (`user:pw@host`)."""
    parts = urlsplit(url)
    if parts.password is not None:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
    return re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?[^/@:]*:)[^@/]*@", r"\1***@", url)


def malformed(url: str) -> str | None:
    """What is wrong with the Redis URL, or None. (Its scheme and port: redis-py reads the rest.)"""
    if urlsplit(url).scheme not in REDIS_SCHEMES:
        return f"malformed Redis URL {masked(url)}: it must start with redis://, rediss:// or unix://"
    try:
        urlsplit(url).port  # redis-py reads it so too, and a bad one is a ValueError traceback there
    except ValueError as bad_port:  # "Port could not be cast to integer value as 'x'", "Port out of range 0-65535"
        return f"malformed Redis URL {masked(url)}: {bad_port}"
    return None


def wait_for_redis(url: str, service: str, sleep: Callable[[float], object] = time.sleep) -> int:
    """Return once the Redis at `url` answers a PING; the number of failed attempts before it did."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    failed, pause = 0, RETRY_FIRST
    with _to_stderr():
        while True:
            try:
                client.ping()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failed += 1
                reason = str(exc).strip() or type(exc).__name__
                if failed == 1:
                    log.warning("%s: cannot reach the fleet's Redis at %s (%s); waiting for it, retrying "
                                "every %g-%gs", service, masked(url), reason, RETRY_FIRST, RETRY_MAX)
                else:
                    log.warning("%s: Redis still unreachable (attempt %d): %s", service, failed, reason)
                sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            if failed:
                log.warning("%s: reached the fleet's Redis at %s after %d failed attempts", service, masked(url),
                            failed)
            client.close()
            return failed


@contextmanager
def _to_stderr() -> Iterator[None]:
    """Celery sets up a worker's and beat's logging once they start, after this wait: until then
    the lines go to stderr in crewq's format."""
    from crewq.workers import logs

    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.formatter())
    handler.addFilter(logs.ContextFilter())
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
