"""Where an LLM request may go under the fleet policy: a key read from `env:VAR` only to the hosts
the policy binds VAR to, and no base_url on a loopback, private, link-local or metadata address
unless the operator allows them (the tools' address guard, `tools.netguard`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from crewq.config.errors import ConfigError

from ..tools import netguard
from .types import LLMConfig


def check(config: LLMConfig, url: str) -> None:
    policy = config.policy
    if policy is None:
        return
    host = urlsplit(url).hostname or ""
    if config.key_var:
        policy.check_secret_host(config.key_var, host)
    if not policy.allow_private_addresses:
        problem = netguard.address_problem(url)
        if problem:
            raise ConfigError(f"{config.provider} base_url: {problem}")
