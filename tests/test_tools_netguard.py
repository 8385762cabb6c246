"""SSRF: private, loopback, link-local and metadata addresses are refused, after DNS and on every hop."""

from __future__ import annotations

import httpx
import pytest

from crewq.config.errors import ToolError
from crewq.config.schema import ToolSpec
from crewq.workers.tools import netguard
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.http_request import HttpRequest
from crewq.workers.tools.read_url import ReadUrl
from crewq.workers.tools.web_search import WebSearch
from crewq.workers.tools.wikipedia import Wikipedia

PUBLIC = "93.184.216.34"  # a global address: only ever "resolved" here, never connected to


@pytest.fixture
def context() -> ToolContext:
    return ToolContext(run_id="run", agent_id="agent", idempotency_key="k")


@pytest.fixture
def names(monkeypatch):
    """Make chosen names resolve to chosen addresses (the guard's resolver hook)."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        answer = table[host]
        return [answer.pop(0)] if len(answer) > 1 else list(answer)  # several entries: one per lookup

    monkeypatch.setattr(netguard, "resolver", resolve)
    return table


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.100.100.200", "0.0.0.0", "::1", "fe80::1", "fd00:ec2::254",
                                     "::ffff:127.0.0.1", "100.64.0.1", "224.0.0.1"])
def test_blocked_addresses(address):
    assert netguard.blocked(address)


@pytest.mark.parametrize("address", [PUBLIC, "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert not netguard.blocked(address)


def test_loopback_is_refused_unless_allowed(apis, context):
    refused = ReadUrl(ToolSpec(name="read_url")).execute({"url": apis.url + "/page"}, context)
    assert refused.is_error and "refused" in refused.content and "127.0.0.1" in refused.content
    allowed = ReadUrl(ToolSpec(name="read_url", extra={"allow_private": True})).execute({"url": apis.url + "/page"}, context)
    assert not allowed.is_error
    assert not any(r["path"] == "/page" for r in apis.requests[:-1])  # the refused call never arrived


def test_a_name_resolving_to_the_metadata_address_is_refused(names, context):
    names["metadata.example"] = ["169.254.169.254"]
    result = HttpRequest(ToolSpec(name="http_request")).execute({"url": "http://metadata.example/latest/"}, context)
    assert result.is_error and "169.254.169.254" in result.content and "allow_private" in result.content


def test_one_private_answer_among_public_ones_is_enough_to_refuse(monkeypatch):
    monkeypatch.setattr(netguard, "resolver", lambda host, port: [PUBLIC, "10.0.0.7"])
    with pytest.raises(ToolError, match="10.0.0.7"):
        netguard.check_url(httpx.URL("https://mixed.example/"))


def test_a_redirect_to_loopback_is_refused(names, context):
    names["public.example"] = [PUBLIC]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:8080/admin"})

    tool = ReadUrl(ToolSpec(name="read_url"))
    tool.transport = httpx.MockTransport(handler)
    result = tool.execute({"url": "http://public.example/start"}, context)
    assert result.is_error and "127.0.0.1" in result.content
    assert seen == ["http://public.example/start"]  # the second hop was never sent


def test_redirects_are_followed_and_checked_when_allowed(apis, context):
    tool = HttpRequest(ToolSpec(name="http_request", extra={"allow_private": True}))
    result = tool.execute({"url": f"{apis.url}/redirect?to=/echo/landed"}, context)
    assert result.structured["body"]["path"] == "/echo/landed"


def test_credentials_are_dropped_on_a_redirect_to_another_host(names):
    names["api.example"] = [PUBLIC]
    names["other.example"] = [PUBLIC]
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.host == "api.example":
            return httpx.Response(307, headers={"Location": "http://other.example/x"})
        return httpx.Response(200, text="ok")

    netguard.fetch("GET", "http://api.example/", headers={"Authorization": "Bearer s3cret"},
                   transport=httpx.MockTransport(handler))
    assert sent[0].headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in sent[1].headers


def test_dns_rebinding_is_caught_at_connect_time(names, context):
    # The check sees a public address; the connection's own lookup gets loopback: refused there.
    names["rebind.example"] = [PUBLIC, "127.0.0.1"]
    result = HttpRequest(ToolSpec(name="http_request")).execute({"url": "http://rebind.example:8/"}, context)
    assert result.is_error and "refused" in result.content and "127.0.0.1" in result.content


def test_only_http_and_https(context):
    result = HttpRequest(ToolSpec(name="http_request")).execute({"url": "file:///etc/passwd"}, context)
    assert result.is_error and "only http and https" in result.content


@pytest.mark.parametrize("tool", [
    WebSearch(ToolSpec(name="web_search", extra={"base_url": "http://127.0.0.1:9"})),
    Wikipedia(ToolSpec(name="wikipedia", extra={"base_url": "http://169.254.169.254"})),
])
def test_configurable_base_urls_are_guarded_too(tool, context):
    result = tool.execute({"query": "x"}, context)
    assert result.is_error and "refused" in result.content
