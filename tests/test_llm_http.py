"""What every HTTP provider shares: bodies that are not the provider's JSON, timeouts, retry-after."""

from __future__ import annotations

import email.utils
import socket

import pytest

from crewq.config.errors import ProviderError, TransientProviderError
from crewq.workers.llm.anthropic import AnthropicProvider
from crewq.workers.llm.http import parse_retry_after
from crewq.workers.llm.openai import OpenAIProvider
from crewq.workers.llm.types import LLMConfig, LLMRequest, Message

from fakes.llm_servers import FakeLLMServer, Reply, openai_completion

KEY = "sk-test-secret-42424242"
HTML = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def openai(url: str) -> OpenAIProvider:
    return OpenAIProvider(LLMConfig(provider="openai", model="gpt-4o", api_key=KEY, base_url=url))


def ask(timeout: float = 5.0) -> LLMRequest:
    return LLMRequest(system="", messages=[Message(role="user", content="hi")], timeout=timeout)


def test_an_html_error_page_from_a_proxy(server):
    server.queue(Reply(status=502, body=HTML, content_type="text/html"))
    with pytest.raises(TransientProviderError) as caught:
        openai(server.url).complete(ask())
    text = str(caught.value)
    assert text.startswith("openai: HTTP 502 from 127.0.0.1:")
    assert "an HTML page, not JSON" in text and "'502 Bad Gateway'" in text and caught.value.status == 502


def test_an_html_page_with_200_is_a_malformed_reply(server):
    server.queue(Reply(status=200, body="<html><head><title>Sign in to the proxy</title></head></html>",
                       content_type="text/html"))
    with pytest.raises(ProviderError, match="openai: malformed reply .*HTML page.*Sign in to the proxy") as caught:
        openai(server.url).complete(ask())
    assert not isinstance(caught.value, TransientProviderError) and caught.value.error_type == "malformed_reply"


def test_malformed_json(server):
    server.queue(Reply(body='{"choices": [oops]}'))
    with pytest.raises(ProviderError, match="openai: malformed reply .*invalid JSON at char 13") as caught:
        openai(server.url).complete(ask())
    assert caught.value.error_type == "malformed_reply"


def test_json_that_ends_early(server):
    server.queue(Reply(body='{"choices": [{"message": {"content": "hel'))
    with pytest.raises(ProviderError, match="truncated body"):
        openai(server.url).complete(ask())


def test_a_body_cut_short_by_the_connection(server):
    server.queue(Reply(body=openai_completion(text="x" * 500), truncate=40))
    with pytest.raises(ProviderError, match="openai: reply body from 127.0.0.1:.* was cut short") as caught:
        openai(server.url).complete(ask())
    assert caught.value.error_type == "truncated_reply" and not isinstance(caught.value, TransientProviderError)


def test_an_empty_body(server):
    server.queue(Reply(status=503, body=b"", content_type="text/plain"))
    with pytest.raises(TransientProviderError, match="HTTP 503 .*empty body"):
        openai(server.url).complete(ask())


def test_a_read_timeout_is_ours_and_transient(server):
    server.queue(Reply(hang=True))
    provider = AnthropicProvider(LLMConfig(provider="anthropic", model="m", api_key=KEY, base_url=server.url))
    with pytest.raises(TransientProviderError, match=r"anthropic: no reply from 127\.0\.0\.1:\d+ within 0\.2s") as c:
        provider.complete(ask(timeout=0.2))
    assert c.value.error_type == "timeout" and c.value.retry_after is None


def test_connection_refused_is_transient():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientProviderError) as caught:
        openai(f"http://127.0.0.1:{port}/v1").complete(ask())
    assert str(caught.value) == (f"openai: cannot reach http://127.0.0.1:{port}/v1/chat/completions: "
                                 "connection refused [type=connection_refused]")
    # Retried a couple of times inside the turn, not the agent's max_retries; then the policy decides.
    assert caught.value.retryable and caught.value.retry_limit == 2 and not caught.value.permanent


@pytest.mark.parametrize("headers,expected", [
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": "-3"}, 0.0),
    ({"retry-after": "soon"}, None),
    ({}, None),
    ({"retry-after-ms": "junk", "retry-after": "4"}, 4.0),
])
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_as_an_http_date():
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retried_statuses(server, status):
    server.queue(Reply(status=status, body={"error": {"message": "try later", "type": "server_error"}}))
    with pytest.raises(TransientProviderError):
        openai(server.url).complete(ask())


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_not_retried_statuses(server, status):
    server.queue(Reply(status=status, body={"error": {"message": "no", "type": "invalid_request_error"}}))
    with pytest.raises(ProviderError) as caught:
        openai(server.url).complete(ask())
    assert not caught.value.retryable and caught.value.permanent  # no restart either


def test_a_404_names_the_url_posted_to_and_the_model(server):
    server.queue(Reply(status=404, body={"error": {"message": "Not Found", "type": "invalid_request_error"}}))
    with pytest.raises(ProviderError) as caught:
        openai(server.url.replace("http://", "http://user:pw@") + "/v2").complete(ask())
    assert str(caught.value).startswith(f"openai: HTTP 404 from POST {server.url}/v2/v1/chat/completions "
                                        "(model gpt-4o): Not Found")
    assert KEY not in str(caught.value) and "pw" not in str(caught.value) and caught.value.permanent


@pytest.mark.parametrize("status", [500, 502])
def test_a_server_error_that_says_do_not_retry_is_left_to_the_restart_policy(server, status):
    server.queue(Reply(status=status, headers={"x-should-retry": "false"}, body={"error": {"message": "no"}}))
    with pytest.raises(ProviderError) as caught:
        openai(server.url).complete(ask())
    assert not caught.value.retryable and not caught.value.permanent
