"""What every HTTP provider shares: one pooled client, timeouts, error mapping, retry-after parsing.

How a failure becomes a crewq error (`crewq.config.errors`):

    httpx / HTTP outcome                         crewq error                       error_type
    ConnectTimeout, ReadTimeout, WriteTimeout  → TransientProviderError            timeout
    ConnectError: connection refused           → TransientProviderError(retry_limit=2) connection_refused
    ConnectError and other transport errors    → TransientProviderError            connection_error
    connection closed in the middle of the body → ProviderError                    truncated_reply
    408 409 429 5xx 529 (or x-should-retry)    → TransientProviderError(retry_after) the provider's type
      ... but 401, 403, auth and quota types    → ProviderError                     the provider's type
    any other status >= 300                     → ProviderError                     the provider's type
      (a 4xx is permanent: no restart; a 404 names the URL posted to and the model)
    2xx whose body is not a JSON object         → ProviderError                     malformed_reply

Every message names the provider and the host, never the API key: anything echoed back from the
server passes through `redact` first. Timeouts are ours (the threads pool enforces none): the
request's `timeout` bounds connect (at most `CONNECT_TIMEOUT`), write, pool wait and each read.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import threading
import time
from typing import Any, Mapping, cast
from urllib.parse import urlsplit

import httpx

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.config.settings import Settings

from . import endpoint, outbound
from .base import Provider
from .types import LLMConfig, LLMRequest

log = logging.getLogger("crewq.llm.http")

CONNECT_TIMEOUT = Settings.env_value("llm_connect_timeout")  # CREWQ_LLM_CONNECT_TIMEOUT, read once a process
REFUSED_RETRIES = 2  # a refused connection is retried twice inside the turn, then the policy decides
RETRY_STATUSES = frozenset({408, 409, 429, 529})
# Waiting never fixes these, whatever the status or x-should-retry say.
NEVER_RETRY_TYPES = frozenset({
    "authentication_error", "permission_error", "invalid_api_key", "insufficient_quota", "billing_error",
    "billing_hard_limit_reached", "billing_not_active", "enforced_spend_limit_reached", "account_deactivated",
})
NEVER_RETRY_STATUSES = frozenset({401, 403})

_client_lock = threading.Lock()
_client: httpx.Client | None = None
_client_pid = 0


def client() -> httpx.Client:
    """The process's pooled client (httpx.Client is thread-safe); a forked child makes its own."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            _client = httpx.Client(limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                                   follow_redirects=False)
            _client_pid = os.getpid()
        return _client


def timeout_of(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds))


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def request_id(headers: Mapping[str, str], payload: Any = None) -> str | None:
    rid = headers.get("request-id") or headers.get("x-request-id")
    if not rid and isinstance(payload, dict) and isinstance(payload.get("request_id"), str):
        rid = payload["request_id"]
    return rid or None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from retry-after-ms, or retry-after as seconds or an HTTP date; None if absent."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def squash(text: Any) -> str:
    """Text on one line, for quoting a provider's words in an error message."""
    return " ".join(str(text).split())


def is_retryable(status: int, headers: Mapping[str, str], kinds: set[str]) -> bool:
    if status in NEVER_RETRY_STATUSES or kinds & NEVER_RETRY_TYPES:
        return False
    should = (headers.get("x-should-retry") or "").lower()
    if should in ("true", "false"):
        return should == "true"
    return status in RETRY_STATUSES or status >= 500


class HTTPProvider(Provider):
    """A provider that POSTs JSON; subclasses build the body and read the reply."""
    default_base_url = ""

    def __init__(self, config: LLMConfig):
        super().__init__(config)
        self.label = config.provider or self.name  # the name the user wrote ("openai-compatible")

    def url(self, path: str) -> str:
        return endpoint.join(self.config.base_url or self.default_base_url, path)  # root or full endpoint

    def post(self, path: str, headers: dict[str, str], body: dict[str, Any], request: LLMRequest) -> dict[str, Any]:
        url = self.url(path)
        outbound.check(self.config, url)
        started = time.monotonic()
        response = self._send(url, headers, body, request.timeout)
        log.debug("%s POST %s -> %s in %.2fs (request_id=%s)", self.label, _host(url), response.status_code,
                  time.monotonic() - started, request_id(response.headers))
        if response.status_code >= 300:
            raise self._status_error(response, url)
        return self._json_object(response, url)

    def sampling(self, max_tokens_key: str) -> dict[str, Any]:
        """The agent's temperature and max_tokens, where set, under this wire format's names."""
        values = {"temperature": self.config.temperature, max_tokens_key: self.config.max_tokens}
        return {key: value for key, value in values.items() if value is not None}

    def bearer_headers(self) -> dict[str, str]:
        """JSON, and the key as a bearer token when there is one (OpenAI's and Ollama's way)."""
        headers = {"content-type": "application/json"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def reply_model(self, data: dict[str, Any]) -> str | None:
        """The model the reply says answered (a server may route), else the one asked for."""
        model = data.get("model")
        return model if isinstance(model, str) and model else self.config.model

    def fail(self, message: str, error_type: str = "malformed_reply", **kw: Any) -> ProviderError:
        return ProviderError(redact(message, self.config.api_key), provider=self.label, error_type=error_type, **kw)

    # One concern each: transport, status, body.

    def _send(self, url: str, headers: dict[str, str], body: dict[str, Any], timeout: float) -> httpx.Response:
        http = outbound.guarded_client(self.config) or client()
        request = http.build_request("POST", url, json=body, headers=headers, timeout=timeout_of(timeout))
        host = _host(url)
        try:
            response = http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._transient(f"no reply from {host} within {timeout:g}s ({type(exc).__name__})",
                                  "timeout") from None
        except httpx.ConnectError as exc:
            if _refused(exc):  # nothing listens there: cheap to ask again, but rarely worth it more than twice
                raise self._transient(f"cannot reach {_shown(url)}: connection refused", "connection_refused",
                                      retry_limit=REFUSED_RETRIES) from None
            raise self._transient(f"cannot reach {host}: {type(exc).__name__}: {exc}", "connection_error") from None
        except httpx.TransportError as exc:
            raise self._transient(f"cannot reach {host}: {type(exc).__name__}: {exc}", "connection_error") from None
        try:
            response.read()
        except httpx.TimeoutException as exc:
            raise self._transient(f"reply from {host} stalled past {timeout:g}s ({type(exc).__name__})",
                                  "timeout") from None
        except httpx.TransportError as exc:
            raise self.fail(f"reply body from {host} was cut short (HTTP {response.status_code}, "
                            f"{type(exc).__name__}: {exc})", "truncated_reply", status=response.status_code,
                            request_id=request_id(response.headers)) from None
        finally:
            response.close()
        return response

    def _transient(self, message: str, error_type: str, retry_limit: int | None = None) -> TransientProviderError:
        return TransientProviderError(redact(message, self.config.api_key), provider=self.label, error_type=error_type,
                                      retry_limit=retry_limit)

    def _status_error(self, response: httpx.Response, url: str) -> ProviderError:
        status, headers = response.status_code, response.headers
        payload = _try_json(response.content)
        kinds, error_type, message = _error_fields(payload)
        if message is None:
            message = describe_body(response)
        where = _host(url)
        if status == 404:  # a wrong base_url or model name: say exactly what was asked for
            where = f"POST {_shown(url)} (model {self.config.model or 'not set'})"
        text = redact(f"HTTP {status} from {where}: {message}", self.config.api_key)
        kw: dict[str, Any] = dict(provider=self.label, status=status, error_type=error_type,
                  request_id=request_id(headers, payload))
        if is_retryable(status, headers, kinds):
            return TransientProviderError(text, retry_after=parse_retry_after(headers), **kw)
        return ProviderError(text, **kw)

    def _json_object(self, response: httpx.Response, url: str) -> dict[str, Any]:
        rid = request_id(response.headers)
        content = response.content
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise self.fail(f"malformed reply from {_host(url)}: {_json_problem(response, exc)}",
                            status=response.status_code, request_id=rid) from None
        if not isinstance(data, dict):
            raise self.fail(f"malformed reply from {_host(url)}: JSON {type(data).__name__}, expected an object",
                            status=response.status_code, request_id=rid)
        return data


def describe_body(response: httpx.Response) -> str:
    """A short, safe description of a body that is not the provider's JSON (e.g. a proxy's page)."""
    text = response.content.decode("utf-8", "replace")
    ctype = response.headers.get("content-type", "no content-type").split(";")[0]
    if not text.strip():
        return f"empty body ({ctype})"
    if _looks_html(text, ctype):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        shown = _squash(title.group(1)) if title else _squash(re.sub(r"<[^>]+>", " ", text))[:120]
        return f"an HTML page, not JSON ({ctype}; probably a proxy or gateway): {shown!r}"
    return f"not JSON ({ctype}): {_squash(text)[:120]!r}"


def _json_problem(response: httpx.Response, exc: ValueError) -> str:
    text = response.content.decode("utf-8", "replace")
    ctype = response.headers.get("content-type", "").split(";")[0]
    if not text.strip() or _looks_html(text, ctype):
        return describe_body(response)
    if isinstance(exc, json.JSONDecodeError) and (exc.pos >= len(text.rstrip())
                                                  or exc.msg.startswith("Unterminated string")):
        return f"JSON ends early after {len(response.content)} bytes (truncated body)"
    where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
    return f"invalid JSON{where}: {_squash(text)[:80]!r}"


def _error_fields(payload: Any) -> tuple[set[str], str | None, str | None]:
    """(every type/code named, the most specific one, the message) from any provider's error body."""
    if not isinstance(payload, dict):
        return set(), None, None
    error = payload.get("error")
    if isinstance(error, str):  # ollama: {"error": "model 'x' not found"}
        return set(), None, error
    if not isinstance(error, dict):
        message = payload.get("message") or payload.get("detail")
        return set(), None, message if isinstance(message, str) else None
    details = cast(dict, error.get("details")) if isinstance(error.get("details"), dict) else {}
    candidates = [details.get("error_code"), error.get("code"), error.get("type"), error.get("status")]
    kinds = {c for c in candidates if isinstance(c, str) and c}
    error_type = next((c for c in candidates if isinstance(c, str) and c), None)
    message = error.get("message")
    return kinds, error_type, message if isinstance(message, str) else None


def _try_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _looks_html(text: str, ctype: str) -> bool:
    return "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def _squash(text: str) -> str:
    return " ".join(text.split())


def _refused(exc: httpx.ConnectError) -> bool:
    cause = exc.__context__ or exc.__cause__
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__context__ or cause.__cause__
    return "connection refused" in str(exc).lower()


def _shown(url: str) -> str:
    """The URL without credentials or query (a key may travel in either)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_host(url)}{parts.path}"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url  # never echo credentials embedded in a URL
