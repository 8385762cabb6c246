"""What the network built-ins share: settings from `extra`, a base URL, and guarded fetches.

Every network built-in reads `extra.base_url` (so tests and proxies can point it elsewhere),
`extra.timeout` (seconds) and `extra.allow_private` (turns the address guard off).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import httpx

from crewq._version import __version__
from crewq.config.errors import ConfigError, ToolError
from crewq.config.policy import policy_of

from . import netguard
from .base import Tool, ToolContext

USER_AGENT = f"crewq/{__version__} (multi-agent crews on Celery; https://github.com/crewq/crewq)"


class NetTool(Tool):
    default_base_url: str = ""
    timeout: float = 30.0
    # A seam for tests (an httpx.MockTransport); None uses the real network through the guard.
    transport: httpx.BaseTransport | None = None

    @property
    def allow_private(self) -> bool:
        return self.spec.extra.get("allow_private") is True

    def option(self, key: str, context: ToolContext, default: Any = None) -> Any:
        value = self.spec.extra.get(key, default)
        return self.setting(value, context, f"extra.{key}")

    def base_url(self, context: ToolContext) -> str:
        return str(self.option("base_url", context, self.default_base_url)).rstrip("/")

    def user_agent(self, context: ToolContext) -> str:
        return str(self.option("user_agent", context, USER_AGENT))

    def private_ok(self, context: ToolContext) -> bool:
        """`extra.allow_private`, if the fleet policy lets a crew turn the guard off."""
        if not self.allow_private:
            return False
        policy = policy_of(context.env)
        if policy is not None and not policy.allow_private_addresses:
            raise ConfigError("extra.allow_private is refused on this fleet (policy allow_private_addresses)",
                              key=f"tools.{self.spec.name}.extra.allow_private")
        return True

    def fetch(self, method: str, url: str, context: ToolContext, **kw: Any) -> netguard.Fetched:
        policy = policy_of(context.env)
        if policy is not None and self.spec.api_key:  # a tool holding a key fetches only from the key's hosts
            policy.check_key_destination(self.spec.api_key, url, key=f"tools.{self.spec.name}.api_key")
        headers = {"User-Agent": self.user_agent(context), **kw.pop("headers", {})}
        # The HTTP timeout stays under the tool's, so the model gets the clearer network error.
        return netguard.fetch(method, url, allow_private=self.private_ok(context), timeout=self.timeout * 0.9,
                              headers=headers, transport=self.transport, **kw)

    def fetch_json(self, method: str, url: str, context: ToolContext, **kw: Any) -> Any:
        kw.setdefault("headers", {})["Accept"] = "application/json"
        got = self.fetch(method, url, context, **kw)
        if got.status >= 400:
            raise ToolError(f"{httpx.URL(url).host} answered HTTP {got.status}: {got.text()[:300]}")
        try:
            return json.loads(got.body)
        except ValueError:
            raise ToolError(f"{httpx.URL(url).host} answered with something that is not JSON") from None


def pick(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: data[k] for k in keys if data.get(k) not in (None, "")}
