"""A scriptable HTTP server on 127.0.0.1 that plays an LLM provider, plus each wire format's reply shapes.

    with FakeLLMServer() as server:
        server.queue(Reply(body=anthropic_message(text="hi")))
        ... point base_url at server.url ...
        server.received[0].body  # the JSON the provider sent

A reply can also hang (until the server closes: read timeouts) or be cut short (truncated bodies).
The shapes follow the providers' documented non-streaming responses.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    hang: bool = False  # send nothing until the server closes
    truncate: int | None = None  # send only this many body bytes, announcing the full length
    delay: float = 0.0  # wait this long (or until the server closes) before replying

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class FakeLLMServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default: Reply | None = None
        self.received: list[Received] = []
        # (arrived, ended) of each request, time.time(); ended is None until its reply is sent.
        self.spans: list[list[float | None]] = []
        self.release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        # A short poll so that shutdown() at teardown returns at once.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def always(self, reply: Reply) -> None:
        self.default = reply

    def next_reply(self) -> Reply:
        if self.replies:
            return self.replies.popleft()
        return self.default or Reply(status=500, body={"error": "fake server: no reply queued"})

    def most_in_flight(self) -> int:
        """The most requests that were being served at once."""
        edges = sorted([(s[0], 1) for s in self.spans] + [(s[1], -1) for s in self.spans if s[1] is not None],
                       key=lambda e: (e[0], e[1]))
        most = now = 0
        for _, step in edges:
            now += step
            most = max(most, now)
        return most

    def __enter__(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        fake: FakeLLMServer = self.server.fake  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        span: list[float | None] = [time.time(), None]
        fake.spans.append(span)
        fake.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = fake.next_reply()
        if reply.hang:
            fake.release.wait(10)
            return
        if reply.delay:
            fake.release.wait(reply.delay)
        payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        self.send_header("content-length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload if reply.truncate is None else payload[:reply.truncate])
        self.wfile.flush()
        span[1] = time.time()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


# The documented shapes, per wire format.

def anthropic_message(text: str | None = None, tool_uses: list[tuple[str, str, dict]] = (),
                      stop_reason: str | None = None, usage: tuple[int, int] = (10, 5),
                      model: str = "claude-sonnet-4-5-20250929") -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in tool_uses]
    return {"id": "msg_01fake", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason or ("tool_use" if tool_uses else "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def anthropic_error(error_type: str, message: str = "fake error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_fake_body"}


def openai_completion(text: str | None = None, tool_calls: list[tuple[str | None, str, Any]] = (),
                      finish_reason: str | None = None, usage: tuple[int, int] | None = (12, 7),
                      model: str = "gpt-4o-2024-08-06") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [{**({"id": i} if i is not None else {}), "type": "function",
                                  "function": {"name": n, "arguments": a}} for i, n, a in tool_calls]
    data: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
    }
    if usage is not None:
        data["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return data


def openai_error(error_type: str, code: str | None = None, message: str = "fake error") -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def ollama_chat(text: str = "", tool_calls: list[tuple[str, Any]] = (), done_reason: str = "stop",
                counts: tuple[int, int] = (20, 9), model: str = "llama3.1") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [{"function": {"name": n, "arguments": a}} for n, a in tool_calls]
    return {"model": model, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": True,
            "done_reason": done_reason, "total_duration": 1000, "prompt_eval_count": counts[0],
            "eval_count": counts[1]}


def gemini_generate(text: str | None = None, calls: list[tuple[str, dict] | tuple[str, dict, str]] = (),
                    finish_reason: str = "STOP", usage: tuple[int, int] | None = (30, 8), thoughts: int = 0,
                    model: str = "gemini-2.5-flash") -> dict[str, Any]:
    """calls: (name, args) or (name, args, thoughtSignature); thoughts: thinking tokens (not in candidates)."""
    parts: list[dict[str, Any]] = [{"text": text}] if text is not None else []
    for call in calls:
        part: dict[str, Any] = {"functionCall": {"name": call[0], "args": call[1]}}
        if len(call) > 2:
            part["thoughtSignature"] = call[2]
        parts.append(part)
    data: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": parts},
                                            "finishReason": finish_reason, "index": 0}],
                            "modelVersion": model, "responseId": "fake-response"}
    if usage is not None:
        data["usageMetadata"] = {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                                 "totalTokenCount": sum(usage) + thoughts}
        if thoughts:
            data["usageMetadata"]["thoughtsTokenCount"] = thoughts
    return data


def gemini_error(code: int, status: str, message: str = "fake error", retry_delay: str | None = None) -> dict[str, Any]:
    """retry_delay: a google.rpc.RetryInfo detail, as Gemini's 429s carry it ("37s")."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if retry_delay is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return {"error": error}
