"""The fleet policy: what the operator lets crews do on the workers, read by each worker from its own
environment, never from a submission.

    CREWQ_POLICY=/etc/crewq/policy.yaml     a YAML (or JSON) file with the keys of `Policy`
    CREWQ_POLICY=trusted                    everything allowed (one user's own fleet, the tests)
    (unset)                                 the fleet default: `Policy()`, which refuses whatever
                                            runs code, reads outside the roots or sends a secret elsewhere

The embedded default (`crewq run` with no broker) uses `Policy.trusted()` unless CREWQ_POLICY is
set: the person running their own file on their own machine is the operator.

Enforced where each thing is used, in the worker: `python:` tools and MCP commands when tools are
built, `base_dir` roots when an agent's file tools are built, `env:` references when they are
resolved (`GuardedEnv`, handed to everything that resolves one), a secret's hosts and the address
guard when an LLM request or an MCP connection is made. Each refusal is a ConfigError (permanent)
naming the setting to change.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .limits import Limits

ANY = "*"
POLICY_ENV = "CREWQ_POLICY"
# Each provider's key goes to that provider's public API host, and nowhere else, unless the operator says so.
DEFAULT_SECRETS: dict[str, list[str]] = {
    "OPENAI_API_KEY": ["api.openai.com"],
    "ANTHROPIC_API_KEY": ["api.anthropic.com"],
    "GEMINI_API_KEY": ["generativelanguage.googleapis.com"],
    "GOOGLE_API_KEY": ["generativelanguage.googleapis.com"],
}
# Where an `env:` reference becomes prompt text (and so the model's output, and Redis).
_PROMPT_KEY = re.compile(r"^(task\.input|agents\..+\.(role|goal|backstory))$")
# Where an `env:` reference becomes an API key (an LLM's, a tool's): the only places a secret may go,
# since there the request's host is checked against the secret's binding.
_KEY_FIELD = re.compile(r"^(runtime|agents\..+\.llm(\.fallback\[\d+\])?|tools\.[^.]+)\.api_key$")


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    python_tools: list[str] = Field(default_factory=list, description="modules `python:` tools may come "
                                    "from: 'mytools', 'mytools.*', 'mytools.web:search'; '*' for any")
    mcp_commands: list[str] = Field(default_factory=list, description="programs MCP stdio servers may run, "
                                    "by absolute path; '*' for any")
    roots: list[str] = Field(default_factory=list, description="folders every file tool's base_dir must lie "
                             "under; '*' for anywhere")
    env_vars: list[str] = Field(default_factory=list, description="environment variables crews may reference "
                                "(names or patterns like 'CREW_*'; '*' for any); the keys of `secrets` are "
                                "allowed too")
    secrets: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_SECRETS.items()},
                                          description="variable -> the hosts an api_key read from it may be "
                                          "sent to: `host` is https on 443, or `host:port`, `http://host:port` "
                                          "('*' as a variable: any variable; as a host: any host)")
    env_in_prompts: bool = Field(False, description="may env: appear in task.input, role, goal, backstory")
    allow_private_addresses: bool = Field(False, description="may LLM base_url, MCP server_url and network "
                                          "tools (with extra.allow_private) reach loopback, private, link-local "
                                          "and metadata addresses")
    limits: Limits = Limits()

    @classmethod
    def trusted(cls) -> "Policy":
        """Today's trust: the person who writes the crew file runs it."""
        return cls(python_tools=[ANY], mcp_commands=[ANY], roots=[ANY], env_vars=[ANY], secrets={ANY: [ANY]},
                   env_in_prompts=True, allow_private_addresses=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, default: "Policy | None" = None) -> "Policy":
        raw = (os.environ if env is None else env).get(POLICY_ENV, "").strip()
        if not raw:
            return default if default is not None else cls()
        if raw == "trusted":
            return cls.trusted()
        return cls.from_file(raw)

    @classmethod
    def from_file(cls, path: str | Path) -> "Policy":
        from .safeyaml import parse  # (YAML is a superset of JSON)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the fleet policy ({POLICY_ENV}): {exc}", file=str(path)) from None
        _, data = parse(text, str(path))
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"fleet policy: {err['msg']}", file=str(path), key=where or None) from None

    # -- the checks ----------------------------------------------------------------------------

    def check_python_tool(self, ref: str, key: str) -> None:
        module = ref.partition(":")[0]
        if not any(p == ANY or fnmatch.fnmatchcase(module, p) or p == ref for p in self.python_tools):
            raise ConfigError(f"python tool {ref!r} is not allowed on this fleet: the operator lists the modules "
                              f"allowed in policy python_tools", key=key)

    def check_mcp_command(self, command: str, key: str) -> None:
        if ANY in self.mcp_commands:
            return
        if not os.path.isabs(command) or os.path.normpath(command) not in {os.path.normpath(c) for c in self.mcp_commands}:
            raise ConfigError(f"MCP command {command!r} is not allowed on this fleet: the operator lists the "
                              "programs allowed, by absolute path, in policy mcp_commands", key=key)

    def check_base_dir(self, base: Path, key: str) -> None:
        """`base` is resolved (symlinks followed); it must be one of the roots or under one."""
        if ANY in self.roots:
            return
        for root in self.roots:
            if base.is_relative_to(Path(root).resolve()):
                return
        roots = ", ".join(self.roots) or "none"
        raise ConfigError(f"base_dir {str(base)!r} is outside the folders file tools may use on this fleet "
                          f"(policy roots: {roots})", key=key)

    def check_env_ref(self, name: str, key: str | None) -> None:
        key = key or ""
        if _PROMPT_KEY.match(key) and not self.env_in_prompts:
            raise ConfigError(f"env:{name} in prompt text is not allowed on this fleet (policy env_in_prompts)",
                              key=key or None)
        if name in self.secrets or ANY in self.secrets:
            if ANY not in self.secret_hosts(name) and not _KEY_FIELD.match(key):
                raise ConfigError(f"env:{name} is a secret bound to {', '.join(self.secret_hosts(name))}: it may "
                                  "only be an api_key (of an LLM or a tool) on this fleet (policy secrets)",
                                  key=key or None)
            return
        if not any(p == ANY or fnmatch.fnmatchcase(name, p) for p in self.env_vars):
            raise ConfigError(f"env:{name} is not allowed on this fleet (policy env_vars)", key=key or None)

    def check_key_destination(self, api_key: object, url: str, key: str | None = None) -> None:
        """A request carrying `api_key` (as written in the crew: `env:VAR` or a literal) goes to `url`."""
        from .envref import ref_name
        name = ref_name(api_key)
        if name is not None:
            self.check_secret_destination(name, url, key)

    def secret_hosts(self, name: str) -> list[str]:
        return self.secrets.get(name) or self.secrets.get(ANY) or []

    def check_secret_destination(self, name: str, url: str, key: str | None = None) -> None:
        """`url` (scheme, host and port) is one the secret is bound to: a bare host in the binding means
        https on port 443, so neither plain http nor another port of the same host gets the key."""
        hosts = self.secret_hosts(name)
        if ANY in hosts:
            return
        try:
            target = endpoint(url)
        except ValueError:
            raise ConfigError(f"{url!r} is not a URL the key of env:{name} can be sent to", key=key) from None
        if target in {endpoint(h) for h in hosts}:
            return
        scheme, host, port = target
        shown = host if (scheme, port) == ("https", 443) else f"{scheme}://{host}:{port}"
        bound = ", ".join(hosts) or "no host"
        raise ConfigError(f"env:{name} may be sent to {bound}, not to {shown} (policy secrets.{name})",
                          key=key)

    @field_validator("secrets")
    @classmethod
    def _bindings_are_endpoints(cls, secrets: dict[str, list[str]]) -> dict[str, list[str]]:
        for hosts in secrets.values():
            for host in hosts:
                if host != ANY:
                    endpoint(host)  # a ValueError names the entry
        return secrets


_PORTS = {"https": 443, "http": 80}


def endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, or of a secret's binding: `host` (https, 443), `host:8443`
    (https), `http://host:8080`. ValueError for what is none of these."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _PORTS or not host:
        raise ValueError(f"{url!r} is not an http(s) host or URL")
    return scheme, host, parts.port or _PORTS[scheme]  # (.port raises ValueError for a bad one)


class GuardedEnv(Mapping[str, str]):
    """A worker's environment as crews see it: every `env:` reference is checked against the policy
    before it is resolved (`crewq.config.envref.resolve` calls `check_ref`)."""

    def __init__(self, values: Mapping[str, str], policy: Policy):
        self._values, self.policy = dict(values), policy

    def check_ref(self, name: str, key: str | None) -> None:
        self.policy.check_env_ref(name, key)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def policy_of(env: Mapping[str, str] | None) -> Policy | None:
    """The policy an environment carries; None for a plain mapping (a local command: its user is the operator)."""
    return getattr(env, "policy", None)
