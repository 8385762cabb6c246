"""Routex's tools (brave_search, scrape, translate, send_email) against local fakes of their APIs."""

from __future__ import annotations

import json

import pytest

from crewq.config.errors import ConfigError
from crewq.config.schema import ToolSpec
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.registry import build_tools
from crewq.workers.tools.translate import FREE, PRO, Translate

from fakes.tool_servers import FakeApis

ENV = {"BRAVE_KEY": "brave-key", "BEE_KEY": "bee-key", "DEEPL_KEY": "deepl-key:fx", "MAIL_KEY": "mail-key"}


@pytest.fixture
def context() -> ToolContext:
    return ToolContext(run_id="run", agent_id="agent", idempotency_key="run:agent:0:1:0", env=ENV)


def tool(name: str, apis: FakeApis, api_key: str, **extra):
    spec = ToolSpec(name=name, api_key=api_key, extra={"base_url": apis.url, "allow_private": True, **extra})
    [built] = build_tools(spec)
    return built


def test_brave_search_is_web_search_on_brave_under_its_own_name(apis, context):
    search = build_tools(ToolSpec(name="brave_search", api_key="env:BRAVE_KEY", max_results=2,
                                  extra={"base_url": apis.url, "allow_private": True}))[0]
    result = search.execute({"query": "tides"}, context)
    assert not result.is_error, result.content
    assert [r["title"] for r in result.structured["results"]] == ["Brave 0", "Brave 1"]
    assert apis.last()["headers"]["x-subscription-token"] == "brave-key"
    wrong = build_tools(ToolSpec(name="brave_search", api_key="env:MAIL_KEY",
                                 extra={"base_url": apis.url, "allow_private": True}))[0]
    assert wrong.execute({"query": "x"}, context).is_error  # a 401 goes back to the model


def test_scrape_renders_js_by_default_and_returns_readable_text(apis, context):
    scrape = tool("scrape", apis, "env:BEE_KEY")
    result = scrape.execute({"url": "https://example.com/octopus"}, context)
    assert not result.is_error, result.content
    assert "An octopus has three hearts." in result.structured["text"] and "tracking" not in result.structured["text"]
    assert apis.last()["query"] == {"api_key": "bee-key", "url": "https://example.com/octopus", "render_js": "true"}
    scrape.execute({"url": "https://example.com/", "render_js": False}, context)
    assert apis.last()["query"]["render_js"] == "false"
    refused = tool("scrape", apis, "env:MAIL_KEY").execute({"url": "https://example.com/"}, context)
    assert refused.is_error and "HTTP 401" in refused.content


def test_translate_sends_a_deepl_key_and_fx_keys_use_the_free_endpoint(apis, context):
    result = tool("translate", apis, "env:DEEPL_KEY").execute({"text": "hello", "target_lang": "fr"}, context)
    assert result.structured == {"text": "[FR] hello", "detected_source_lang": "EN", "target_lang": "FR"}
    assert json.loads(apis.last()["body"]) == {"text": ["hello"], "target_lang": "FR"}
    assert apis.last()["headers"]["authorization"] == "DeepL-Auth-Key deepl-key:fx"
    seen = []
    default = Translate(ToolSpec(name="translate", api_key="env:K"))
    default.fetch_json = lambda method, url, context, **kw: seen.append(url) or {"translations": [{"text": "x"}]}
    default.execute({"text": "a", "target_lang": "DE"}, ToolContext("r", "a", "k", env={"K": "abc:fx"}))
    default.execute({"text": "a", "target_lang": "DE"}, ToolContext("r", "a", "k", env={"K": "abc"}))
    assert seen == [f"{FREE}/v2/translate", f"{PRO}/v2/translate"]


@pytest.mark.parametrize("provider", ["sendgrid", "resend"])
def test_send_email_through_each_provider(apis, context, provider):
    mail = tool("send_email", apis, "env:MAIL_KEY", provider=provider, from_email="crew@example.com",
                from_name="Crew")
    result = mail.execute({"to": "ada@example.com", "subject": "Report", "body": "hi"}, context)
    assert not result.is_error, result.content
    assert result.structured["message_id"] == ("sg-1" if provider == "sendgrid" else "re-1")
    sent = apis.last()
    body = json.loads(sent["body"])
    assert sent["headers"]["idempotency-key"] == "run:agent:0:1:0"  # a redelivered call sends it again
    if provider == "sendgrid":
        assert body["from"] == {"email": "crew@example.com", "name": "Crew"}
        assert body["personalizations"] == [{"to": [{"email": "ada@example.com"}]}]
        assert body["content"] == [{"type": "text/plain", "value": "hi"}]
    else:
        assert body == {"from": "Crew <crew@example.com>", "to": ["ada@example.com"], "subject": "Report", "text": "hi"}


def test_send_email_needs_from_email_and_a_known_provider():
    with pytest.raises(ConfigError, match="from_email"):
        build_tools(ToolSpec(name="send_email", api_key="env:K"))
    with pytest.raises(ConfigError, match="unknown send_email provider 'pigeon'"):
        build_tools(ToolSpec(name="send_email", api_key="env:K", extra={"provider": "pigeon", "from_email": "a@b"}))


def test_generate_image_saves_under_base_dir_and_returns_the_path(apis, tmp_path):
    context = ToolContext(run_id="run", agent_id="agent", idempotency_key="k", source_dir=str(tmp_path),
                          env={"IMG_KEY": "image-key"})
    spec = ToolSpec(name="generate_image", api_key="env:IMG_KEY", base_dir="./outputs/images",
                    extra={"base_url": apis.url, "allow_private": True})
    [image] = build_tools(spec)
    result = image.execute({"prompt": "a lighthouse", "filename": "cover.png"}, context)
    assert not result.is_error, result.content
    saved = tmp_path / "outputs" / "images" / "cover.png"
    assert result.structured["path"] == str(saved) and saved.read_bytes() == b"\x89PNG\r\n\x1a\na lighthouse"
    assert json.loads(apis.last()["body"]) == {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1,
                                               "size": "1024x1024", "response_format": "b64_json"}
    escape = image.execute({"prompt": "x", "filename": "../../out.png"}, context)
    assert escape.is_error  # the schema refuses a path; base_dir is never left
    wrong = ToolContext(run_id="run", agent_id="agent", idempotency_key="k", env={"IMG_KEY": "nope"})
    assert "HTTP 401" in image.execute({"prompt": "x"}, wrong).content


def test_summarise_is_one_llm_call_through_crewqs_providers(context):
    from fakes.llm_servers import FakeLLMServer, Reply, anthropic_error, anthropic_message
    with FakeLLMServer() as llm:
        [summarise] = build_tools(ToolSpec(name="summarise", api_key="env:MAIL_KEY", extra={"base_url": llm.url}))
        llm.queue(Reply(body=anthropic_message(text=" Tides follow the moon. ")))
        result = summarise.execute({"text": "A long text about tides and the moon.", "max_words": 50}, context)
        assert not result.is_error, result.content
        assert result.structured["summary"] == "Tides follow the moon."
        sent = llm.received[0]
        assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "mail-key"
        assert sent.body["model"] == "claude-haiku-4-5" and "at most 50 words" in sent.body["system"]
        llm.queue(Reply(status=401, body=anthropic_error("authentication_error", "invalid x-api-key")))
        failed = summarise.execute({"text": "x"}, context)
        assert failed.is_error and "the summarising LLM (anthropic/claude-haiku-4-5) failed" in failed.content
