"""The network built-ins against local fakes of their APIs (web_search, wikipedia, read_url, http_request)."""

from __future__ import annotations

import httpx
import pytest

from crewq.config.errors import ConfigError
from crewq.config.schema import ToolSpec
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.http_request import HttpRequest
from crewq.workers.tools.read_url import ReadUrl, readable_text
from crewq.workers.tools.registry import build_tools
from crewq.workers.tools.web_search import WebSearch
from crewq.workers.tools.wikipedia import Wikipedia

from fakes.tool_servers import FakeApis

ENV = {"BRAVE_KEY": "brave-key", "TAVILY_KEY": "tavily-key", "API_TOKEN": "tok-123", "Q_KEY": "qk"}


@pytest.fixture
def context() -> ToolContext:
    return ToolContext(run_id="run", agent_id="agent", idempotency_key="run:agent:0:0:0", env=ENV)


def spec(name: str, apis: FakeApis, **extra) -> ToolSpec:
    extra.setdefault("base_url", apis.url)
    extra.setdefault("allow_private", True)  # the fakes live on 127.0.0.1
    api_key = extra.pop("api_key", None)
    max_results = extra.pop("max_results", None)
    return ToolSpec(name=name, api_key=api_key, max_results=max_results, extra=extra)


# -- web_search -----------------------------------------------------------------------------------

def test_brave_sends_the_subscription_token_and_count(apis, context):
    tool = WebSearch(spec("web_search", apis, backend="brave", api_key="env:BRAVE_KEY"))
    result = tool.execute({"query": "octopus", "max_results": 3}, context)
    assert not result.is_error, result.content
    assert [r["title"] for r in result.structured["results"]] == ["Brave 0", "Brave 1", "Brave 2"]
    assert result.structured["results"][0] == {"title": "Brave 0", "url": "https://b.example/0", "snippet": "about octopus"}
    sent = apis.last()
    assert sent["path"] == "/res/v1/web/search" and sent["query"] == {"q": "octopus", "count": "3"}
    assert sent["headers"]["x-subscription-token"] == "brave-key"


def test_tavily_posts_with_a_bearer_key_and_keeps_the_answer(apis, context):
    tool = WebSearch(spec("web_search", apis, backend="tavily", api_key="env:TAVILY_KEY", max_results=2))
    result = tool.execute({"query": "life"}, context)
    assert not result.is_error, result.content
    assert result.structured["answer"] == "forty-two"
    assert len(result.structured["results"]) == 2
    assert apis.last()["headers"]["authorization"] == "Bearer tavily-key"


def test_duckduckgo_needs_no_key_and_flattens_topic_groups(apis, context):
    result = WebSearch(spec("web_search", apis)).execute({"query": "octopus"}, context)
    assert not result.is_error, result.content
    urls = [r["url"] for r in result.structured["results"]]
    assert urls == ["https://wiki.example/wiki/Octopus", "https://ddg.example/Squid", "https://ddg.example/C"]
    assert apis.last()["query"]["format"] == "json"


def test_a_wrong_key_is_an_error_result_naming_the_status(apis, context):
    tool = WebSearch(spec("web_search", apis, backend="brave", api_key="wrong"))
    result = tool.execute({"query": "x"}, context)
    assert result.is_error and "401" in result.content


def test_a_missing_key_is_an_error_result_naming_the_variable(apis):
    tool = WebSearch(spec("web_search", apis, backend="brave", api_key="env:NOPE_KEY"))
    result = tool.execute({"query": "x"}, ToolContext("r", "a", "k", env={}))
    assert result.is_error and "NOPE_KEY" in result.content


def test_an_unknown_backend_is_a_config_error_when_built(apis):
    with pytest.raises(ConfigError, match="unknown web_search backend 'bing'"):
        build_tools(spec("web_search", apis, backend="bing"))


def test_arguments_that_do_not_fit_the_schema_are_named(apis, context):
    result = WebSearch(spec("web_search", apis)).execute({"query": "x", "max_results": 500}, context)
    assert result.is_error and "max_results" in result.content and "schema of web_search" in result.content
    result = WebSearch(spec("web_search", apis)).execute({"q": "x"}, context)
    assert result.is_error and "'query' is a required property" in result.content


# -- wikipedia ------------------------------------------------------------------------------------

def test_wikipedia_search_strips_markup_and_says_who_is_asking(apis, context):
    result = Wikipedia(spec("wikipedia", apis)).execute({"query": "octopus", "max_results": 2}, context)
    assert not result.is_error, result.content
    first = result.structured["results"][0]
    assert first["title"] == "Octopus" and first["snippet"] == "The octopus & friends"
    sent = apis.last()
    assert sent["query"]["action"] == "query" and sent["query"]["list"] == "search"
    assert sent["query"]["srsearch"] == "octopus" and sent["query"]["srlimit"] == "2"
    assert sent["headers"]["user-agent"].startswith("crewq/")


def test_wikipedia_summary_and_a_missing_page(apis, context):
    tool = Wikipedia(spec("wikipedia", apis))
    result = tool.execute({"query": "Octopus", "action": "summary"}, context)
    assert result.structured["extract"] == "Octopuses have three hearts."
    assert apis.last()["path"] == "/api/rest_v1/page/summary/Octopus"
    missing = tool.execute({"query": "No such page", "action": "summary"}, context)
    assert missing.is_error and "no Wikipedia page titled 'No such page'" in missing.content
    assert apis.last()["path"] == "/api/rest_v1/page/summary/No_such_page"


def test_wikipedia_language_goes_into_the_base_url(apis, context):
    tool = Wikipedia(spec("wikipedia", apis, base_url=apis.url + "/{lang}-wiki", language="de"))
    tool.execute({"query": "Krake"}, context)
    assert apis.last()["path"] == "/de-wiki/w/api.php"
    tool.execute({"query": "Pieuvre", "language": "fr"}, context)
    assert apis.last()["path"] == "/fr-wiki/w/api.php"
    bad = tool.execute({"query": "x", "language": "evil.com/"}, context)
    assert bad.is_error and "language" in bad.content


# -- read_url -------------------------------------------------------------------------------------

def test_read_url_returns_readable_text_only(apis, context):
    result = ReadUrl(spec("read_url", apis)).execute({"url": apis.url + "/page"}, context)
    assert not result.is_error, result.content
    text = result.content
    assert text.startswith("Octopus facts\n")
    assert "An octopus has three hearts." in text and "Eight arms\nBlue blood" in text
    for hidden in ("tracking", "color:red", "Home | About", "secret hidden", "nobody"):
        assert hidden not in text


def test_read_url_refuses_binary_and_cuts_long_text(apis, context):
    tool = ReadUrl(spec("read_url", apis))
    binary = tool.execute({"url": apis.url + "/binary"}, context)
    assert binary.is_error and "image/png" in binary.content
    long = tool.execute({"url": apis.url + "/big?n=5000", "max_chars": 1000}, context)
    assert long.content.startswith("x" * 1000) and "[truncated 4000 characters]" in long.content


def test_readable_text_keeps_block_boundaries():
    assert readable_text("<p>one</p><p>two<br>three</p>") == "one\ntwo\nthree"


# -- http_request ---------------------------------------------------------------------------------

def test_http_request_sends_method_headers_query_and_json(apis, context):
    tool = HttpRequest(spec("http_request", apis))
    result = tool.execute({"method": "POST", "url": "/echo/items", "headers": {"X-Trace": "t1"},
                           "query": {"page": 2, "all": True}, "json": {"name": "octopus"}}, context)
    assert not result.is_error, result.content
    reply = result.structured
    assert reply["status"] == 200 and reply["headers"]["x-request-id"] == "req-1"
    echoed = reply["body"]  # parsed, since the server said JSON
    assert echoed["method"] == "POST" and echoed["path"] == "/echo/items"
    assert echoed["query"] == {"page": "2", "all": "true"}
    assert echoed["headers"]["x-trace"] == "t1" and echoed["body"] == '{"name":"octopus"}'


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_http_request_methods(apis, context, method):
    result = HttpRequest(spec("http_request", apis)).execute({"method": method, "url": "/echo"}, context)
    assert result.structured["body"]["method"] == method


@pytest.mark.parametrize("method,sent", [("POST", True), ("PUT", True), ("PATCH", True), ("DELETE", True),
                                         ("GET", False), ("HEAD", False)])
def test_http_request_sends_an_idempotency_key_with_side_effects(apis, context, method, sent):
    HttpRequest(spec("http_request", apis)).execute({"method": method, "url": "/echo"}, context)
    assert apis.last()["headers"].get("idempotency-key") == ("run:agent:0:0:0" if sent else None)
    # The model's own key wins.
    HttpRequest(spec("http_request", apis)).execute({"method": method, "url": "/echo",
                                                     "headers": {"idempotency-key": "mine"}}, context)
    assert apis.last()["headers"].get("idempotency-key") == "mine"


def test_http_request_head_and_error_statuses_are_information(apis, context):
    tool = HttpRequest(spec("http_request", apis))
    head = tool.execute({"method": "HEAD", "url": "/echo"}, context)
    assert head.structured["status"] == 200 and "body" not in head.structured
    missing = tool.execute({"url": "/echo?status=404"}, context)
    assert not missing.is_error and missing.structured["status"] == 404


def test_http_request_credentials_go_to_the_base_url_only(apis, context):
    tool = HttpRequest(spec("http_request", apis, bearer="env:API_TOKEN", **{"header_X-Api-Key": "env:Q_KEY"},
                            query_key="env:Q_KEY"))
    result = tool.execute({"url": "/echo"}, context)
    sent = result.structured["body"]
    assert sent["headers"]["authorization"] == "Bearer tok-123"
    assert sent["headers"]["x-api-key"] == "qk" and sent["query"] == {"key": "qk"}
    # The same server by another name is another origin: no credentials.
    other = apis.url.replace("127.0.0.1", "localhost")
    elsewhere = tool.execute({"url": other + "/echo"}, context).structured["body"]
    assert "authorization" not in elsewhere["headers"] and "x-api-key" not in elsewhere["headers"]
    assert elsewhere["query"] == {}


def test_http_request_credentials_without_base_url_go_nowhere_and_are_warned_of(apis, context):
    tool = HttpRequest(ToolSpec(name="http_request", api_key="env:API_TOKEN",
                                extra={"bearer_token": "env:API_TOKEN", "query_api_key": "env:Q_KEY",
                                       "header_Accept": "application/json", "param_units": "metric",
                                       "allow_private": True}))
    assert tool.warning() == ("its credentials (api_key, bearer_token, query_api_key, header_Accept) are sent "
                              "nowhere until extra.base_url (or extra.allowed_hosts) names where they go")
    sent = tool.execute({"url": apis.url + "/echo", "params": {"q": "Lagos,NG"}}, context).structured["body"]
    assert sent["query"] == {"units": "metric", "q": "Lagos,NG"}  # param_* go everywhere: they are no secret
    assert "authorization" not in sent["headers"] and "x-api-key" not in sent["headers"]
    assert sent["headers"].get("accept") != "application/json" and "appid" not in sent["query"]


def test_http_request_routex_settings_and_arguments(apis, context):
    tool = HttpRequest(spec("http_request", apis, api_key="env:API_TOKEN", bearer_token="env:API_TOKEN",
                            query_api_key="env:Q_KEY", query_api_key_name="appid", param_units="metric",
                            header_X_GitHub_Api_Version="2022-11-28"))
    assert tool.warning() is None
    sent = tool.execute({"method": "POST", "url": "/echo", "params": {"q": "Lagos,NG", "units": "imperial"},
                         "body": '{"a": 1}'}, context).structured["body"]
    assert sent["query"] == {"units": "imperial", "q": "Lagos,NG", "appid": "qk"}  # the call's params win over param_*
    assert sent["headers"]["x-api-key"] == "tok-123" and sent["headers"]["authorization"] == "Bearer tok-123"
    assert sent["headers"]["x-github-api-version"] == "2022-11-28"
    assert sent["headers"]["content-type"] == "application/json" and sent["body"] == '{"a": 1}'
    text = tool.execute({"method": "POST", "url": "/echo", "body": "plain words"}, context).structured["body"]
    assert text["headers"]["content-type"] == "text/plain" and text["body"] == "plain words"


def test_http_request_allowed_hosts_take_credentials_over_https_only(context):
    tool = HttpRequest(ToolSpec(name="http_request", extra={"bearer_token": "env:API_TOKEN",
                                                            "allowed_hosts": ["api.example.com"]}))
    assert tool.warning() is None
    assert tool._trusted(httpx.URL("https://api.example.com/x"), "", context)
    assert not tool._trusted(httpx.URL("http://api.example.com/x"), "", context)
    assert not tool._trusted(httpx.URL("https://evil.example/x"), "", context)


def test_http_request_caps_the_body(apis, context):
    tool = HttpRequest(spec("http_request", apis, max_bytes=1000))
    result = tool.execute({"url": "/big?n=50000"}, context)
    assert len(result.structured["body"]) == 1000 and "cut at 1000 bytes" in result.structured["truncated"]


def test_output_is_truncated_with_a_visible_marker(apis, context):
    result = HttpRequest(spec("http_request", apis)).execute({"url": "/big?n=50000"}, context)
    assert "…[truncated" in result.content


def test_unreachable_host_is_an_error_result(context):
    tool = ReadUrl(ToolSpec(name="read_url", extra={"allow_private": True, "timeout": 5}))
    result = tool.execute({"url": "http://127.0.0.1:9/"}, context)
    assert result.is_error and "127.0.0.1" in result.content
