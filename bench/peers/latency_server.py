"""A local OpenAI-compatible chat server that answers every call after a fixed latency (keep-alive).

An agent's call that offers tools and has no tool result yet gets a `list_files` tool call; any
other call gets the text "done"; calls to the model "instant" get it without the latency. So every
system under test makes, per agent: an LLM call, one tool call, an LLM call, and all of them wait
the same latency on the same server.

    with LatencyServer(0.2) as server:
        base_url = server.url + "/v1"
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL = "list_files"
INSTANT = "instant"  # a model that answers at once: what a run costs besides the LLM's latency


def reply_to(request: dict[str, Any], counter: itertools.count) -> dict[str, Any]:
    messages = request.get("messages") or []
    wants_tool = bool(request.get("tools")) and not any(m.get("role") == "tool" for m in messages)
    message: dict[str, Any] = {"role": "assistant", "content": None if wants_tool else "done"}
    if wants_tool:
        message["tool_calls"] = [{"id": f"call_{next(counter)}", "type": "function",
                                  "function": {"name": TOOL, "arguments": "{}"}}]
    return {"id": f"chatcmpl-{next(counter)}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model") or "bench",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if wants_tool else "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection, as with a real provider
    # The headers and the body go out as two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK of the headers, ~40 ms a call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        server: LatencyServer = self.server.owner  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if body.get("model") != INSTANT:
            time.sleep(server.latency)  # the model "thinking": each connection has its own thread
        payload = json.dumps(reply_to(body, server.counter)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        with server.lock:
            server.calls += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LatencyServer:
    def __init__(self, latency: float = 0.2):
        self.latency = latency
        self.calls = 0
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> "LatencyServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def main() -> None:
    """Serve in a process of its own (every system under test then shares it on equal terms):
    prints the URL, serves until stdin closes."""
    import argparse
    import sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    with LatencyServer(args.latency) as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
