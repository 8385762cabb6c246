"""Where an LLM request may go under the fleet policy: a key read from `env:VAR` only to the hosts
the policy binds VAR to, and no base_url on a loopback, private, link-local or metadata address
unless the operator allows them (the tools' address guard, `tools.netguard`): checked before the
request, and again at connect time, so a name that resolves differently the second time (DNS
rebinding) reaches nothing private either."""

from __future__ import annotations

import os
import threading

import httpx

from crewq.config.errors import ConfigError

from ..tools import netguard
from .types import LLMConfig


def check(config: LLMConfig, url: str) -> None:
    policy = config.policy
    if policy is None:
        return
    if config.key_var:
        policy.check_secret_destination(config.key_var, url)
    if not policy.allow_private_addresses:
        problem = netguard.address_problem(url)
        if problem:
            raise ConfigError(f"{config.provider} base_url: {problem}")


_lock = threading.Lock()
_guarded: tuple[int, httpx.Client] | None = None


def guarded_client(config: LLMConfig) -> httpx.Client | None:
    """The process's pooled client whose connections go only to public addresses, when the policy
    wants the guard; None otherwise (the caller's own pooled client)."""
    global _guarded
    if config.policy is None or config.policy.allow_private_addresses:
        return None
    with _lock:
        if _guarded is None or _guarded[0] != os.getpid():  # a forked child makes its own
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            _guarded = (os.getpid(), httpx.Client(limits=limits, follow_redirects=False,
                                                  transport=netguard.GuardedTransport(limits)))
        return _guarded[1]
