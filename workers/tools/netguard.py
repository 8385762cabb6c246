"""Outbound HTTP for tools, refused for loopback, private, link-local and cloud metadata addresses.

A model can be talked into fetching `http://169.254.169.254/` (server-side request forgery), so
every URL a network tool fetches is checked after DNS resolution, again on every redirect (we
follow redirects ourselves), and once more at connect time: the socket goes to the address that
was checked, so a name that resolves differently the second time (DNS rebinding) gains nothing.
A tool's `extra.allow_private: true` turns the guard off (a local service, the tests' fakes).

    fetch(method, url, ...) -> Fetched          ToolError when refused, unreachable or too big
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, cast

import httpcore
import httpx

from crewq.config.errors import ToolError

Resolver = Callable[[str, int], list[str]]

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 2_000_000
# Metadata services that are not covered by "not global" everywhere (or are worth naming).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"))
_SENSITIVE_HEADERS = ("authorization", "cookie", "proxy-authorization")


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(cast(str, info[4][0]) for info in infos))  # AF_INET/AF_INET6: a str


# The resolver hook: tests replace it to make a name resolve to a chosen address.
resolver: Resolver = system_resolve


def blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip in METADATA_ADDRESSES or not ip.is_global or ip.is_multicast


TOOL_HINT = "set extra.allow_private to allow it"


def public_addresses(host: str, port: int, hint: str = TOOL_HINT) -> list[str]:
    """The host's addresses, or ToolError if it has none or any of them is not public."""
    try:
        addresses = [host] if _is_ip(host) else resolver(host, port)
    except OSError as exc:
        raise ToolError(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise ToolError(f"cannot resolve {host}")
    bad = [a for a in addresses if blocked(a)]
    if bad:
        # One private answer is enough to refuse: a rebinding name mixes them.
        raise ToolError(f"refused: {host} resolves to a private or reserved address ({bad[0]}); {hint}")
    return addresses


def check_url(url: httpx.URL, hint: str = TOOL_HINT) -> None:
    if url.scheme not in ("http", "https"):
        raise ToolError(f"refused: only http and https URLs are fetched, not {url.scheme or 'a relative URL'}")
    if not url.host:
        raise ToolError(f"refused: {url} has no host")
    public_addresses(url.host, url.port or (443 if url.scheme == "https" else 80), hint)


POLICY_HINT = "the fleet policy's allow_private_addresses allows it"


def address_problem(url: str) -> str | None:
    """Why the fleet's address guard refuses `url` (an LLM base_url, an MCP server_url), or None.
    The same check as the tools'; the caller raises its own (permanent) error."""
    try:
        check_url(httpx.URL(url), POLICY_HINT)
    except (ToolError, httpx.InvalidURL) as exc:
        return str(exc)
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses that pass the check, and to exactly the address checked."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Iterable[Any] | None = None):
        last: Exception | None = None
        try:
            addresses = public_addresses(host, port)
        except ToolError as exc:  # as a connect error, so that every httpx caller handles it as one
            raise httpcore.ConnectError(str(exc)) from None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot connect to {host}")


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, limits: httpx.Limits = httpx.Limits()) -> None:
        super().__init__()
        # httpx has no public knob for the network backend; the pool it builds is replaced.
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                             max_connections=limits.max_connections,
                                             max_keepalive_connections=limits.max_keepalive_connections,
                                             keepalive_expiry=limits.keepalive_expiry,
                                             network_backend=_GuardedBackend())


def client(allow_private: bool, timeout: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client that never follows redirects itself (`fetch` checks every hop)."""
    if transport is None and not allow_private:
        transport = GuardedTransport()
    # trust_env=False when guarded: a proxy from the environment would hide the real destination.
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport,
                        follow_redirects=False, trust_env=allow_private)


@dataclass(frozen=True)
class Fetched:
    status: int
    url: str
    headers: httpx.Headers
    body: bytes
    truncated: bool

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def encoding(self) -> str:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    def text(self) -> str:
        try:
            return self.body.decode(self.encoding, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def fetch(method: str, url: str, *, allow_private: bool = False, timeout: float = 30.0,
          headers: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
          json: Any = None, content: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
          follow_redirects: bool = True, transport: httpx.BaseTransport | None = None) -> Fetched:
    """One request, redirects followed here with a check per hop; the body is cut at max_bytes."""
    target = httpx.URL(url)
    if params:
        target = target.copy_merge_params(dict(params))
    send_headers = dict(headers or {})
    body: dict[str, Any] = {"json": json} if json is not None else ({"content": content} if content else {})
    try:
        with client(allow_private, timeout, transport) as http:
            for _ in range(MAX_REDIRECTS + 1):
                if not allow_private:
                    check_url(target)
                with http.stream(method, target, headers=send_headers, **body) as response:
                    location = response.headers.get("location")
                    if not (follow_redirects and response.is_redirect and location):
                        data, truncated = _read_capped(response, max_bytes)
                        return Fetched(response.status_code, str(target), response.headers, data, truncated)
                following = target.join(location)
                if following.host != target.host or following.scheme != target.scheme or following.port != target.port:
                    send_headers = {k: v for k, v in send_headers.items() if k.lower() not in _SENSITIVE_HEADERS}
                if response.status_code in (301, 302, 303) and method.upper() not in ("GET", "HEAD"):
                    method, body = "GET", {}
                target = following
    except httpx.TimeoutException:
        raise ToolError(f"{target.host}: timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"{target.host}: {type(exc).__name__}: {exc}") from None
    raise ToolError(f"too many redirects (more than {MAX_REDIRECTS}), last to {target}")


def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False
