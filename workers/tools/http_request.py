"""`http_request`: one HTTP call to an API, with credentials from the crew file (Routex's settings).

    tools:
      - name: http_request
        api_key: env:KEY                      # X-Api-Key: ...
        extra:
          base_url: https://api.example.com   # relative URLs start here; credentials go only here
          allowed_hosts: [api.other.example]  # ... and to these hosts (https only)
          bearer_token: env:EXAMPLE_TOKEN     # Authorization: Bearer ... (crewq's older name: bearer)
          query_api_key: env:OWM_KEY          # ?appid=... (query_api_key_name, default api_key)
          query_api_key_name: appid
          header_X_Custom: value              # header X-Custom (Routex: _ becomes -)
          query_key: env:KEY                  # any query parameter (here ?key=...)
          param_units: metric                 # ?units=metric on every request (not a credential)
          max_bytes: 1000000

The model passes `method`, `url`, `params` (or `query`), `headers`, and a body: `body` (a string;
JSON is sent as application/json) or `json`. Credentials (api_key, bearer_token, query_*,
header_*) are sent only to base_url's origin and allowed_hosts, never to a host the model picks
(Routex sends them everywhere). Without either they are sent nowhere: the crew loads and
`validate` warns. The reply is the status, a few useful headers, and the body (parsed when it is
JSON), cut at max_bytes. POST, PUT, PATCH and DELETE carry an
`Idempotency-Key` header that is the same when a crash makes the call run again.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

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
            "params": {"type": "object", "description": "query string parameters",
                       "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "query": {"type": "object", "description": "the same as params",
                      "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "body": {"type": "string", "description": "a request body; JSON text is sent as application/json"},
            "json": {"description": "a JSON request body"},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def warning(self) -> str | None:
        if self.credential_names() and not (self.spec.extra.get("base_url") or self.spec.extra.get("allowed_hosts")):
            return (f"its credentials ({', '.join(self.credential_names())}) are sent nowhere until extra.base_url "
                    "(or extra.allowed_hosts) names where they go")
        return None

    def credential_names(self) -> list[str]:
        extra = self.spec.extra
        names = ["api_key"] if self.spec.api_key else []
        return names + [k for k in extra if k in ("bearer", "bearer_token") or k.startswith(("header_", "query_"))
                        and k != "query_api_key_name"]

    def run(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        method = arguments.get("method", "GET")
        base = self.base_url(context)
        url = httpx.URL(base).join(arguments["url"]) if base else httpx.URL(arguments["url"])
        headers = dict(arguments.get("headers") or {})
        if method in UNSAFE_METHODS and not any(k.lower() == "idempotency-key" for k in headers):
            # The same on a redelivered call (run, agent, attempt, turn, call): an API that honours it
            # applies a repeated request once.
            headers["Idempotency-Key"] = context.idempotency_key
        params = {k[len("param_"):]: str(self.setting(v, context, f"extra.{k}"))
                  for k, v in self.spec.extra.items() if k.startswith("param_")}
        params.update({k: _query_value(v) for k, v in {**(arguments.get("query") or {}),
                                                         **(arguments.get("params") or {})}.items()})
        if self._trusted(url, base, context):
            auth_headers, auth_params = self._credentials(context)
            headers.update(auth_headers)
            params.update(auth_params)
        kw: dict[str, Any] = {"json": arguments["json"]} if "json" in arguments else {}
        if "body" in arguments and "json" not in arguments:
            kw["content"] = arguments["body"].encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json" if _is_json(arguments["body"]) else "text/plain"
        max_bytes = int(self.spec.extra.get("max_bytes", DEFAULT_MAX_BYTES))
        got = self.fetch(method, str(url), context, headers=headers, params=params, max_bytes=max_bytes, **kw)
        return _reply(got, method)

    def _trusted(self, url: httpx.URL, base: str, context: ToolContext) -> bool:
        """May credentials go to `url`? Only base_url's origin and, over https, the allowed hosts."""
        if base and _origin(url) == _origin(httpx.URL(base)):
            return True
        hosts = self.option("allowed_hosts", context, []) or []
        return url.scheme == "https" and url.host in {str(h).lower() for h in hosts}

    def _credentials(self, context: ToolContext) -> tuple[dict[str, str], dict[str, str]]:
        extra = self.spec.extra
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        if self.spec.api_key:
            headers["X-Api-Key"] = str(self.setting(self.spec.api_key, context, "api_key"))
        bearer_key = "bearer_token" if "bearer_token" in extra else "bearer"
        if extra.get(bearer_key):
            headers["Authorization"] = f"Bearer {self.setting(extra[bearer_key], context, f'extra.{bearer_key}')}"
        for key, value in extra.items():
            if key.startswith("header_"):
                name = key.removeprefix("header_").replace("_", "-")  # Routex: header_X_Custom is X-Custom
                headers[name] = str(self.setting(value, context, f"extra.{key}"))
            elif key == "query_api_key":
                params[str(extra.get("query_api_key_name") or "api_key")] = str(self.setting(value, context,
                                                                                               f"extra.{key}"))
            elif key.startswith("query_") and key != "query_api_key_name":
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


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
