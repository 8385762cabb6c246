"""JSON-RPC 2.0 messages as MCP uses them, and the errors an MCP client raises.

    ToolError
    └── McpError              the server answered with an error, or not as the protocol says
        ├── McpUnavailable    the server cannot be reached (dead process, refused connection)
        └── SessionExpired    HTTP 404 on a session: initialize again (handled inside the client)

Every message names the server, so the model (and the person reading the run) knows which one.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from crewq.config.errors import ToolError

METHOD_NOT_FOUND = -32601
_MISSING = object()


class McpError(ToolError):
    def __init__(self, message: str, *, server: str, code: int | None = None):
        self.server, self.code = server, code
        super().__init__(f"MCP server {server!r}: {message}")


class McpUnavailable(McpError):
    """The server is not there; a later call may reconnect."""


class SessionExpired(McpError):
    """The server no longer knows our session (HTTP 404): start a new one."""


class Ids:
    """Request ids, unique per connection and safe to take from several threads."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            return next(self._next)


def request(msg_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def result(msg_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "result": value}


def error(msg_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


def is_request(msg: Any) -> bool:
    return isinstance(msg, dict) and "method" in msg and "id" in msg


def is_response(msg: Any) -> bool:
    return isinstance(msg, dict) and "method" not in msg and ("result" in msg or "error" in msg)


def answer_to(msg: dict[str, Any]) -> dict[str, Any]:
    """What a client says to a request from the server: pong to ping, 'not supported' to the rest."""
    if msg.get("method") == "ping":
        return result(msg["id"], {})
    return error(msg["id"], METHOD_NOT_FOUND, f"crewq does not support {msg.get('method')}")


def find_response(payload: Any, msg_id: int) -> Any:
    """The response with our id in a message or a batch, or _MISSING."""
    for msg in payload if isinstance(payload, list) else [payload]:
        if is_response(msg) and msg.get("id") == msg_id:
            return msg
    return _MISSING


def unwrap(response: dict[str, Any], server: str) -> Any:
    if "error" in response:
        err = response["error"] or {}
        raise McpError(str(err.get("message", err)), server=server, code=err.get("code"))
    return response.get("result")


MISSING = _MISSING
