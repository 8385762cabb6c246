"""One MCP session over either transport: initialize, list tools, call a tool.

The handshake is `initialize` then `notifications/initialized`; the version the server picks
goes into the `MCP-Protocol-Version` header (HTTP). A session the server has forgotten (404) is
initialized again once, and the call retried.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from crewq._version import __version__

from ..base import ToolResult
from .jsonrpc import McpError, SessionExpired

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")  # newest first; we offer the first
CLIENT_INFO = {"name": "crewq", "version": __version__}
MAX_PAGES = 100


class Transport(Protocol):
    server: str
    protocol_version: str | None
    session_id: str | None

    def request(self, method: str, params: dict[str, Any] | None, timeout: float) -> Any: ...
    def notify(self, method: str, params: dict[str, Any] | None = None) -> None: ...
    def expire(self, session_id: str | None) -> bool: ...
    def close(self) -> None: ...


class McpSession:
    def __init__(self, transport: Transport, *, startup_timeout: float = 15.0):
        self.transport = transport
        self.server = transport.server
        self.server_info: dict[str, Any] = {}
        self.startup_timeout = startup_timeout
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._initialize()
                self._started = True

    def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = self._call("tools/list", {"cursor": cursor} if cursor else {}, self.startup_timeout) or {}
            tools.extend(t for t in page.get("tools") or [] if isinstance(t, dict) and t.get("name"))
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return tools

    def call_tool(self, name: str, arguments: dict[str, Any], timeout: float) -> ToolResult:
        result = self._call("tools/call", {"name": name, "arguments": arguments}, timeout) or {}
        return to_tool_result(result)

    def close(self) -> None:
        self.transport.close()

    def _initialize(self) -> None:
        reply = self.transport.request("initialize", {
            "protocolVersion": PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": CLIENT_INFO,
        }, self.startup_timeout) or {}
        version = reply.get("protocolVersion")
        if version not in PROTOCOL_VERSIONS:
            raise McpError(f"speaks protocol version {version!r}; crewq speaks {', '.join(PROTOCOL_VERSIONS)}",
                           server=self.server)
        self.transport.protocol_version = version
        self.server_info = reply.get("serverInfo") or {}
        self.transport.notify("notifications/initialized")

    def _call(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        self.start()
        session = self.transport.session_id
        try:
            return self.transport.request(method, params, timeout)
        except SessionExpired:
            with self._lock:
                if self.transport.expire(session):
                    self._initialize()
            return self.transport.request(method, params, timeout)


def to_tool_result(result: dict[str, Any]) -> ToolResult:
    """Text content joined; other content named; isError kept; structuredContent kept."""
    parts = []
    for item in result.get("content") or []:
        kind = item.get("type")
        if kind == "text":
            parts.append(str(item.get("text", "")))
        elif kind == "resource":
            res = item.get("resource") or {}
            parts.append(res.get("text") or f"[resource {res.get('uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {item.get('uri', '')}: {item.get('name', '')}]")
        else:
            parts.append(f"[{kind} {item.get('mimeType', '')}]".replace(" ]", "]"))
    structured = result.get("structuredContent")
    text = "\n".join(parts)
    if not text and structured is not None:
        text = json.dumps(structured, ensure_ascii=False)
    return ToolResult(text, is_error=bool(result.get("isError")), structured=structured)
