"""A hand-written streamable HTTP MCP server for the cases the SDK server does not show on demand.

It can answer as JSON or as SSE (priming event, a notification and a ping before the response,
the response sent only once the ping is answered), pages tools/list, forgets sessions on demand
(so the next request gets 404), resumes a cut stream on GET with Last-Event-ID, and records
every request it sees.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from .local_http import LocalHTTP

PAGES = {None: ([{"name": "alpha", "description": "first page",
                  "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}], "page-2"),
         "page-2": ([{"name": "beta", "description": "second page", "inputSchema": {"type": "object"}}], None)}


class FakeMcpHttp(LocalHTTP):
    def __init__(self, mode: str = "json", extra_tools: list[str] = (), version: str | None = None):
        self.mode = mode  # json | sse | resume
        self.version = version  # the protocol version the server picks (default: the client's offer)
        self.extra_tools = list(extra_tools)  # more tool names on the last page
        self.sessions: set[str] = set()
        self.seen: list[dict[str, Any]] = []  # {verb, method, session, version, last_event_id}
        self.client_answers: list[dict[str, Any]] = []
        self.pong = threading.Event()
        self._ids = itertools.count(1)
        self._held: dict[str, dict[str, Any]] = {}  # last event id -> the response not yet sent
        super().__init__(_handler(self))

    @property
    def url(self) -> str:
        return self.root + "/mcp"

    def forget_sessions(self) -> None:
        self.sessions.clear()

    def methods(self) -> list[str]:
        return [s["method"] for s in self.seen if s["verb"] == "POST"]

    # -- what the server answers ----------------------------------------------------------------

    def answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        method, params = msg["method"], msg.get("params") or {}
        if method == "initialize":
            return {"protocolVersion": self.version or params.get("protocolVersion"), "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake-http", "version": "1"}}
        if method == "tools/list":
            tools, cursor = PAGES[params.get("cursor")]
            if cursor is None:
                tools = tools + [{"name": n, "description": f"{n} from fake", "inputSchema": {"type": "object"}}
                                 for n in self.extra_tools]
            return {"tools": tools, **({"nextCursor": cursor} if cursor else {})}
        if method == "tools/call" and params["name"] == "alpha":
            return {"content": [{"type": "text", "text": f"alpha got {params['arguments'].get('x')}"},
                                {"type": "text", "text": "second part"}]}
        if method == "tools/call" and params["name"] in self.extra_tools:
            return {"content": [{"type": "text", "text": f"{params['name']} on {self.url}"}]}
        if method == "tools/call":
            return {"content": [{"type": "text", "text": "beta is broken"}], "isError": True}
        raise KeyError(method)


def _handler(fake: FakeMcpHttp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _record(self, method: str | None) -> None:
            fake.seen.append({"verb": self.command, "method": method,
                              "session": self.headers.get("Mcp-Session-Id"),
                              "version": self.headers.get("MCP-Protocol-Version"),
                              "last_event_id": self.headers.get("Last-Event-ID")})

        def do_DELETE(self) -> None:
            self._record(None)
            fake.sessions.discard(self.headers.get("Mcp-Session-Id", ""))
            self._send(200)

        def do_GET(self) -> None:
            self._record(None)
            held = fake._held.pop(self.headers.get("Last-Event-ID", ""), None)
            if held is None:
                return self._send(405)
            self._stream([("e2", held)])

        def do_POST(self) -> None:
            msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._record(msg.get("method"))
            if msg.get("method") != "initialize" and self.headers.get("Mcp-Session-Id") not in fake.sessions:
                return self._send(404)
            if "method" not in msg:  # the client answering our ping
                fake.client_answers.append(msg)
                fake.pong.set()
                return self._send(202)
            if "id" not in msg:
                return self._send(202)
            response = {"jsonrpc": "2.0", "id": msg["id"], "result": fake.answer(msg)}
            headers = {}
            if msg["method"] == "initialize":
                session = f"session-{next(fake._ids)}"
                fake.sessions.add(session)
                headers["Mcp-Session-Id"] = session
            if fake.mode == "json" or msg["method"] == "initialize":
                return self._send(200, json.dumps(response).encode(), "application/json", headers)
            if fake.mode == "resume" and msg["method"] == "tools/call":
                fake._held["e1"] = response
                return self._stream([("e1", None)])  # cut after the priming event
            ping = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
            note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hi"}}
            self._stream([("p0", None), (None, note), (None, ping)], then=response)

        def _send(self, status: int, body: bytes = b"", kind: str | None = None,
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {**(headers or {}), **({"Content-Type": kind} if kind else {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, events: list[tuple[str | None, Any]], then: dict[str, Any] | None = None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event_id, data in events:
                line = (f"id: {event_id}\n" if event_id else "") + f"data: {json.dumps(data) if data else ''}\n\n"
                self.wfile.write(line.encode())
                self.wfile.flush()
            if then is not None:
                # The response waits for the client's pong: the test then knows ping was answered.
                if not fake.pong.wait(10):
                    then = {"jsonrpc": "2.0", "id": then["id"], "error": {"code": -1, "message": "no pong"}}
                self.wfile.write(f"event: message\ndata: {json.dumps(then)}\n\n".encode())
            self.close_connection = True

    return Handler
