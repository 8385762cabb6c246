"""MCP's streamable HTTP transport (revisions 2025-06-18 and 2025-11-25), over httpx.

Every message is a POST to one endpoint. The server answers a request with `application/json`
or with a `text/event-stream` that may first carry notifications, priming events (an id and no
data) and requests of its own (ping), before the response with our id. A stream that ends early
after giving an event id is resumed with a GET and `Last-Event-ID`. The session id the server
hands out on initialize goes on every later request; a 404 on it means the session is gone.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Mapping

import httpx

from . import jsonrpc, sse
from .jsonrpc import McpError, McpUnavailable, SessionExpired

MAX_RESUMES = 3


class HttpTransport:
    def __init__(self, url: str, headers: Mapping[str, str], *, server: str, connect_timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None):
        self.url, self.server = url, server
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._headers = dict(headers)
        self._ids = jsonrpc.Ids()
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=httpx.Timeout(60.0, connect=connect_timeout), follow_redirects=True,
                                  transport=transport)

    # -- what the session uses -------------------------------------------------------------

    def request(self, method: str, params: dict[str, Any] | None, timeout: float) -> Any:
        msg_id = self._ids.take()
        sent_session = self.session_id
        try:
            with self._http.stream("POST", self.url, json=jsonrpc.request(msg_id, method, params),
                                   headers=self._post_headers(), timeout=timeout) as response:
                self._check(response, sent_session, method)
                if method == "initialize" and response.headers.get("mcp-session-id"):
                    self.session_id = response.headers["mcp-session-id"]
                return self._reply(response, msg_id, method, timeout)
        except httpx.TimeoutException:
            raise McpError(f"no answer to {method} within {timeout:g}s", server=self.server) from None
        except httpx.HTTPError as exc:
            raise McpUnavailable(f"cannot reach {self.url}: {exc}", server=self.server) from None

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._post(jsonrpc.notification(method, params))

    def expire(self, session_id: str | None) -> bool:
        """Forget the session if it is still `session_id`; True if this call did so."""
        with self._lock:
            if self.session_id != session_id:
                return False  # another thread has started a new one already
            self.session_id, self.protocol_version = None, None
            return True

    def close(self) -> None:
        try:
            if self.session_id:
                # Ending the session is a courtesy; a server may answer 405 (it does not allow it).
                self._http.delete(self.url, headers=self._post_headers(), timeout=5.0)
        except httpx.HTTPError:
            pass
        finally:
            self._http.close()

    # -- the chain behind request() ----------------------------------------------------------

    def _post_headers(self) -> dict[str, str]:
        headers = {**self._headers, "Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def _check(self, response: httpx.Response, sent_session: str | None, method: str) -> None:
        if response.status_code == 404 and sent_session:
            raise SessionExpired("the session has expired", server=self.server)
        if response.status_code >= 400:
            body = response.read().decode("utf-8", "replace")
            try:
                detail = json.loads(body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = body[:300]
            raise McpError(f"{method} answered HTTP {response.status_code}: {detail}",
                           server=self.server, code=response.status_code)

    def _reply(self, response: httpx.Response, msg_id: int, method: str, timeout: float) -> Any:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            found = jsonrpc.find_response(json.loads(response.read()), msg_id)
        elif kind == "text/event-stream":
            found = self._from_stream(response, msg_id, timeout)
        else:
            raise McpError(f"{method} answered HTTP {response.status_code} with {kind or 'no content type'}",
                           server=self.server)
        if found is jsonrpc.MISSING:
            raise McpError(f"the reply to {method} did not contain its response", server=self.server)
        return jsonrpc.unwrap(found, self.server)

    def _from_stream(self, response: httpx.Response, msg_id: int, timeout: float) -> Any:
        found, last_id = self._read_events(response, msg_id)
        for _ in range(MAX_RESUMES):
            if found is not jsonrpc.MISSING or last_id is None:
                break
            headers = {**self._post_headers(), "Accept": "text/event-stream", "Last-Event-ID": last_id}
            headers.pop("Content-Type")
            with self._http.stream("GET", self.url, headers=headers, timeout=timeout) as resumed:
                if resumed.status_code >= 400:
                    break
                found, newer = self._read_events(resumed, msg_id)
                last_id = newer or last_id
        return found

    def _read_events(self, response: httpx.Response, msg_id: int) -> tuple[Any, str | None]:
        last_id = None
        for event in sse.events(response.iter_lines()):
            last_id = event.id or last_id
            if not event.data.strip():
                continue  # a priming event: only an id to resume from
            try:
                payload = json.loads(event.data)
            except ValueError:
                continue
            for msg in payload if isinstance(payload, list) else [payload]:
                if jsonrpc.is_request(msg):
                    self._post(jsonrpc.answer_to(msg))
            found = jsonrpc.find_response(payload, msg_id)
            if found is not jsonrpc.MISSING:
                return found, last_id
        return jsonrpc.MISSING, last_id

    def _post(self, message: dict[str, Any]) -> None:
        sent_session = self.session_id
        try:
            response = self._http.post(self.url, json=message, headers=self._post_headers())
        except httpx.HTTPError as exc:
            raise McpUnavailable(f"cannot reach {self.url}: {exc}", server=self.server) from None
        self._check(response, sent_session, message.get("method", "a response"))
