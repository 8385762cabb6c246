"""MCP servers as crewq tools: discovery once per worker process, one `Tool` per server tool.

    tools:
      - name: mcp
        extra:
          server_name: docs                 # how agents refer to it, and the prefix on a clash
          server_url: https://mcp.example.com/mcp
          header_Authorization: env:DOCS_TOKEN
      - name: mcp
        extra: {server_name: git, command: uvx, args: [mcp-server-git], env: {GIT_DIR: env:REPO}}

`env:` references in a server's settings are resolved when it is discovered, from the
environment passed in (the worker's, over the crew's .env when the caller has it).
A server that is down at discovery is a ToolServerUnavailable naming it (a restart may help); at
call time its failure is the tool's error result, and the next call connects again.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from typing import Any, Mapping

from crewq.config import envref
from crewq.config.errors import ConfigError, ToolServerUnavailable
from crewq.config.policy import policy_of
from crewq.config.schema import ToolSpec

from .. import netguard
from ..base import Tool, ToolContext, ToolResult
from .http import HttpTransport
from .jsonrpc import McpError, McpUnavailable
from .session import McpSession
from .stdio import StdioTransport

DEFAULT_TIMEOUT = 60.0


class McpServer:
    """One configured server in this process: its settings, a live session, its tools."""

    def __init__(self, spec: ToolSpec, env: Mapping[str, str]):
        extra = spec.extra
        key = f"tools.{spec.name}.extra"
        self.url = envref.resolve(extra.get("server_url"), env, key=f"{key}.server_url")
        self.command = envref.resolve(extra.get("command"), env, key=f"{key}.command")
        if bool(self.url) == bool(self.command):
            raise ConfigError("an MCP server needs extra.server_url or extra.command (one of them)", key=key)
        self.name = str(extra.get("server_name") or self.url or self.command)
        policy = policy_of(env)
        # Under the fleet's address guard, every connection (redirects included) is checked again.
        self.guarded = policy is not None and not policy.allow_private_addresses
        if policy is not None and self.command:
            policy.check_mcp_command(str(self.command), key=f"{key}.command")
        if policy is not None and self.url and spec.api_key:
            policy.check_key_destination(spec.api_key, str(self.url), key=f"tools.{spec.name}.api_key")
        if policy is not None and self.url and not policy.allow_private_addresses:
            problem = netguard.address_problem(str(self.url))
            if problem:
                raise ConfigError(f"MCP server {self.name!r}: {problem}", key=f"{key}.server_url")
        self.spec_key = f"tools.{spec.name}"
        self.args = [str(a) for a in envref.resolve(extra.get("args") or [], env, key=f"{key}.args")]
        self.child_env = {str(k): str(v) for k, v in envref.resolve(extra.get("env") or {}, env, key=f"{key}.env").items()}
        self.headers = {k.removeprefix("header_"): str(envref.resolve(v, env, key=f"{key}.{k}"))
                        for k, v in extra.items() if k.startswith("header_")}
        if spec.api_key:
            key = envref.resolve(spec.api_key, env, key=f"tools.{spec.name}.api_key")
            self.headers.setdefault("Authorization", f"Bearer {key}")
        self.cwd = extra.get("cwd")
        self.inherit_env = extra.get("inherit_env") is True
        self.startup_timeout = float(extra.get("startup_timeout", 15.0))
        self.timeout = float(extra.get("timeout", DEFAULT_TIMEOUT))
        self.identity = json.dumps([self.url, self.command, self.args, self.child_env, self.headers,
                                    self.cwd, self.inherit_env, self.guarded], sort_keys=True)
        self._session: McpSession | None = None
        self._lock = threading.Lock()

    def session(self) -> McpSession:
        with self._lock:
            if self._session is None:
                transport = (HttpTransport(self.url, self.headers, server=self.name,
                                           transport=netguard.GuardedTransport() if self.guarded else None)
                             if self.url else
                             StdioTransport(self.command, self.args, server=self.name, env=self.child_env,
                                            cwd=self.cwd, inherit_env=self.inherit_env))
                self._session = McpSession(transport, startup_timeout=self.startup_timeout)
            return self._session

    def discover(self) -> list[dict[str, Any]]:
        try:
            return self.session().list_tools()
        except McpError as exc:
            self.drop()
            where = self.url or " ".join([self.command, *self.args])
            raise ToolServerUnavailable(f"MCP server {self.name!r} ({where}) is not usable: {exc}",
                              key=self.spec_key) from None

    def call(self, wire_name: str, arguments: dict[str, Any], timeout: float) -> ToolResult:
        try:
            return self.session().call_tool(wire_name, arguments, timeout)
        except McpUnavailable:
            self.drop()  # the next call starts a new process or session
            raise

    def drop(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # closing a broken connection may fail; it is gone either way
                pass


class McpTool(Tool):
    def __init__(self, spec: ToolSpec, server: McpServer, info: dict[str, Any]):
        self.name = self.wire_name = str(info["name"])
        self.server = server
        self.server_name = server.name
        schema = info.get("inputSchema")
        # The server's schema reaches the model as it is ($defs, nesting and all).
        self.parameters = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
        self.timeout = server.timeout
        super().__init__(spec)
        # The spec's description is the server's; each tool keeps its own.
        self.description = str(info.get("description") or info.get("title") or f"{self.name} (MCP server {server.name})")

    def renamed(self, name: str) -> "McpTool":
        twin = object.__new__(McpTool)
        twin.__dict__.update(self.__dict__)
        twin.name = name  # the model sees this; wire_name is what the server knows
        return twin

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        # A little under the tool timeout, so the model reads the server's name in the error.
        return self.server.call(self.wire_name, arguments, self.timeout * 0.9)

    def execute(self, arguments: Any, context: ToolContext) -> ToolResult:
        import jsonschema  # imported by the first call (as in Tool.execute), not by the registry
        try:
            return super().execute(arguments, context)
        except jsonschema.SchemaError as exc:  # the server's schema is broken, not the call
            return ToolResult(f"{self.name}: MCP server {self.server_name!r} published an invalid input "
                              f"schema: {exc.message}", is_error=True)


# -- discovery, once per process ------------------------------------------------------------------

_SERVERS: dict[str, tuple[int, McpServer, list[dict[str, Any]]]] = {}
_CACHE_LOCK = threading.Lock()


def mcp_tools(spec: ToolSpec, env: Mapping[str, str] | None = None) -> list[Tool]:
    """The factory behind `name: mcp`: every tool the server publishes (discovered once)."""
    server = McpServer(spec, os.environ if env is None else env)
    with _CACHE_LOCK:
        cached = _SERVERS.get(server.identity)
        # A forked child must not share its parent's pipes or sockets: discover again.
        if cached and cached[0] == os.getpid():
            server, infos = cached[1], cached[2]
        else:
            infos = server.discover()
            _SERVERS[server.identity] = (os.getpid(), server, infos)
    return [McpTool(spec, server, info) for info in infos]


def forget_servers() -> None:
    """Close every server this process started (at exit, and between tests)."""
    with _CACHE_LOCK:
        entries = list(_SERVERS.values())
        _SERVERS.clear()
    for pid, server, _ in entries:
        if pid == os.getpid():
            server.drop()


atexit.register(forget_servers)
