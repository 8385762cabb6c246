"""MCP over stdio: the server is our child process; one JSON-RPC message per line each way.

A reader thread routes responses to the callers waiting on them and answers the server's own
requests (ping); another drains stderr (a full pipe would block the server) and keeps its tail
for error messages. Shutdown follows the spec: close stdin, wait, terminate, wait, kill.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Mapping, Sequence

from . import jsonrpc
from .jsonrpc import McpError, McpUnavailable

# What the child inherits from the worker unless told otherwise: enough to find programs, not
# the worker's secrets. (The same list the official SDKs use.)
INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR",
                 "SYSTEMROOT", "APPDATA", "USERPROFILE", "TEMP")
GRACE = 2.0


class StdioTransport:
    protocol_version: str | None = None
    session_id: str | None = None

    def __init__(self, command: str, args: Sequence[str], *, server: str, env: Mapping[str, str] | None = None,
                 cwd: str | None = None, inherit_env: bool = False):
        self.server = server
        child_env = dict(os.environ) if inherit_env else {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        child_env.update(env or {})
        try:
            self._proc = subprocess.Popen([command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=child_env, cwd=cwd, text=True,
                                          encoding="utf-8", errors="replace", bufsize=1)
        except OSError as exc:
            raise McpUnavailable(f"cannot start {command!r}: {exc}", server=server) from None
        self._ids = jsonrpc.Ids()
        self._pending: dict[int, Future] = {}
        self._write_lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._dead: str | None = None
        self._reader = threading.Thread(target=self._read_stdout, name=f"mcp-{server}-out", daemon=True)
        self._drainer = threading.Thread(target=self._read_stderr, name=f"mcp-{server}-err", daemon=True)
        self._reader.start()
        self._drainer.start()

    @property
    def alive(self) -> bool:
        return self._dead is None

    def request(self, method: str, params: dict[str, Any] | None, timeout: float) -> Any:
        msg_id = self._ids.take()
        waiter: Future = Future()
        self._pending[msg_id] = waiter
        try:
            self._send(jsonrpc.request(msg_id, method, params))
            response = waiter.result(timeout=timeout)
        except FutureTimeout:
            self._send_quietly(jsonrpc.notification("notifications/cancelled",
                                                    {"requestId": msg_id, "reason": "timed out"}))
            raise McpError(f"no answer to {method} within {timeout:g}s", server=self.server) from None
        finally:
            self._pending.pop(msg_id, None)
        return jsonrpc.unwrap(response, self.server)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send(jsonrpc.notification(method, params))

    def expire(self, session_id: str | None) -> bool:
        return False  # a process has no session to lose

    def close(self) -> None:
        proc = self._proc
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        for stop in (None, proc.terminate, proc.kill):
            if stop is not None:
                stop()
            try:
                proc.wait(timeout=GRACE)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(GRACE)
        self._drainer.join(GRACE)

    # -- the pipes -----------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._dead:
            raise McpUnavailable(self._dead, server=self.server)
        line = json.dumps(message, separators=(",", ":")) + "\n"
        try:
            with self._write_lock:
                self._proc.stdin.write(line)  # type: ignore[union-attr]
                self._proc.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            raise McpUnavailable(self._why_dead(), server=self.server) from None

    def _send_quietly(self, message: dict[str, Any]) -> None:
        try:
            self._send(message)
        except McpError:
            pass

    def _read_stdout(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        for line in stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not protocol: a misbehaving server's print()
            if jsonrpc.is_request(msg):
                self._send_quietly(jsonrpc.answer_to(msg))
            elif jsonrpc.is_response(msg):
                waiter = self._pending.get(msg.get("id"))
                if waiter is not None and not waiter.done():
                    waiter.set_result(msg)
        stdout.close()
        self._dead = self._why_dead()
        for waiter in list(self._pending.values()):
            if not waiter.done():
                waiter.set_exception(McpUnavailable(self._dead, server=self.server))

    def _read_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        for line in stderr:
            self._stderr.append(line.rstrip())
        stderr.close()

    def _why_dead(self) -> str:
        try:
            code = self._proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            return "the server closed its output"
        self._drainer.join(GRACE)  # its last words explain most crashes
        tail = " | ".join(list(self._stderr)[-5:])
        return f"the server process exited with code {code}" + (f": {tail}" if tail else "")
