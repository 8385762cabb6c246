"""`http_request`: one HTTP call to an API, with credentials from the crew file.

    tools:
      - name: http_request
        extra:
          base_url: https://api.example.com   # relative URLs start here
          bearer: env:EXAMPLE_TOKEN           # Authorization: Bearer ...
          header_X-Api-Key: env:KEY           # any header
          query_key: env:KEY                  # any query parameter (here ?key=...)
          max_bytes: 1000000

Credentials are sent only to base_url's origin (a prompt-injected model must not be able to
send them elsewhere); auth without base_url is a config error. POST, PUT, PATCH and DELETE carry
an `Idempotency-Key` header that is the same when a crash makes the call run again. The reply is the status, a few
useful headers, and the body (parsed when it is JSON), cut at max_bytes.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from crewq.config.errors import ConfigError, ToolError

from .base import ToolContext
from .netguard import Fetched
from .nettool import NetTool

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SHOWN_HEADERS = ("content-type", "content-length", "location", "etag", "last-modified",
                 "retry-after", "link", "x-request-id", "x-ratelimit-remaining")
DEFAULT_MAX_BYTES = 1_000_000


class HttpRequest(NetTool):
    name = "http_request"
    description = ("Make an HTTP request and get back status, headers and body (parsed when JSON). "
                   "Relative URLs start at the configured base URL.")
    parameters = {
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": METHODS, "default": "GET"},
            "url": {"type": "string", "minLength": 1},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "json": {"description": "a JSON request body"},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def __init__(self, spec=None):
        super().__init__(spec)
        extra = self.spec.extra
        has_auth = bool(extra.get("bearer") or self.spec.api_key
                        or any(k.startswith(("header_", "query_")) for k in extra))
        if has_auth and not extra.get("base_url"):
            raise ConfigError("http_request credentials need extra.base_url (they are only sent there)",
                              key=f"tools.{self.spec.name}.extra.base_url")

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        method = arguments.get("method", "GET")
        base = self.base_url(context)
        url = httpx.URL(base).join(arguments["url"]) if base else httpx.URL(arguments["url"])
        headers = dict(arguments.get("headers") or {})
        if method in UNSAFE_METHODS and not any(k.lower() == "idempotency-key" for k in headers):
            # The same on a redelivered call (run, agent, attempt, turn, call): an API that honours it
            # applies a repeated request once.
            headers["Idempotency-Key"] = context.idempotency_key
        params = {k: _query_value(v) for k, v in (arguments.get("query") or {}).items()}
        if base and _origin(url) == _origin(httpx.URL(base)):
            auth_headers, auth_params = self._credentials(context)
            headers.update(auth_headers)
            params.update(auth_params)
        kw: dict[str, Any] = {"json": arguments["json"]} if "json" in arguments else {}
        max_bytes = int(self.spec.extra.get("max_bytes", DEFAULT_MAX_BYTES))
        got = self.fetch(method, str(url), context, headers=headers, params=params, max_bytes=max_bytes, **kw)
        return _reply(got, method)

    def _credentials(self, context: ToolContext) -> tuple[dict[str, str], dict[str, str]]:
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        bearer = self.spec.extra.get("bearer", self.spec.api_key)
        if bearer:
            headers["Authorization"] = f"Bearer {self.setting(bearer, context, 'extra.bearer')}"
        for key, value in self.spec.extra.items():
            if key.startswith("header_"):
                headers[key.removeprefix("header_")] = str(self.setting(value, context, f"extra.{key}"))
            elif key.startswith("query_"):
                params[key.removeprefix("query_")] = str(self.setting(value, context, f"extra.{key}"))
        return headers, params


def _reply(got: Fetched, method: str) -> dict[str, Any]:
    out: dict[str, Any] = {"status": got.status, "url": got.url,
                           "headers": {k: got.headers[k] for k in SHOWN_HEADERS if k in got.headers}}
    if method == "HEAD":
        return out
    body: Any = got.text()
    if got.content_type == "application/json" or got.content_type.endswith("+json"):
        try:
            body = json.loads(got.body) if not got.truncated else body
        except ValueError:
            pass  # declared JSON but is not: the model gets the text
    out["body"] = body
    if got.truncated:
        out["truncated"] = f"the body was cut at {len(got.body)} bytes"
    return out


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
