"""Our MCP client against the official SDK's server (streamable HTTP and stdio) and a scripted fake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crewq.config.errors import ConfigError, ToolServerUnavailable
from crewq.config.schema import ToolSpec
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.mcp import forget_servers, mcp_tools
from crewq.workers.tools.mcp.http import HttpTransport
from crewq.workers.tools.mcp.session import McpSession

from fakes.mcp_fake_http import FakeMcpHttp

SERVER_SCRIPT = str(Path(__file__).parent / "fakes" / "mcp_server.py")
CONTEXT = ToolContext(run_id="run", agent_id="agent", idempotency_key="k")


@pytest.fixture(autouse=True)
def fresh_cache():
    forget_servers()
    yield
    forget_servers()


@pytest.fixture(scope="module")
def sdk_http_url():
    proc = subprocess.Popen([sys.executable, SERVER_SCRIPT, "http"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()  # the port, once the socket listens
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def stdio_spec(**extra) -> ToolSpec:
    return ToolSpec(name="mcp", extra={"server_name": "sdk-stdio", "command": sys.executable,
                                       "args": [SERVER_SCRIPT, "stdio"], **extra})


@pytest.fixture(params=["http", "stdio"])
def sdk_spec(request) -> ToolSpec:
    if request.param == "http":
        url = request.getfixturevalue("sdk_http_url")
        return ToolSpec(name="mcp", extra={"server_name": "sdk-http", "server_url": url})
    return stdio_spec()


# -- the official SDK's server ----------------------------------------------------------------------

def test_lists_every_tool_with_its_full_schema(sdk_spec):
    tools = {t.name: t for t in mcp_tools(sdk_spec)}
    assert sorted(tools) == ["add", "echo", "fail", "lookup"]
    assert tools["add"].description == "Add two integers."
    lookup = tools["lookup"].parameters
    # Not flattened: the nested model stays a $ref into $defs, with its own descriptions.
    assert lookup["properties"]["filters"] == {"$ref": "#/$defs/Filters"}
    assert lookup["$defs"]["Filters"]["properties"]["language"]["description"] == "a language code"
    assert tools["lookup"].schema().parameters == lookup


def test_calls_tools_and_keeps_structured_content(sdk_spec):
    tools = {t.name: t for t in mcp_tools(sdk_spec)}
    added = tools["add"].execute({"a": 2, "b": 40}, CONTEXT)
    assert not added.is_error and added.structured == {"total": 42}
    echoed = tools["echo"].execute({"text": "hi"}, CONTEXT)
    assert echoed.content == "echo: hi"
    nested = tools["lookup"].execute({"query": "q", "filters": {"language": "de", "tags": ["a", "b"]}}, CONTEXT)
    assert nested.content == "q in de tagged a,b"


def test_a_failing_tool_is_an_error_result(sdk_spec):
    fail = next(t for t in mcp_tools(sdk_spec) if t.name == "fail")
    result = fail.execute({"reason": "testing"}, CONTEXT)
    assert result.is_error and "failed on purpose: testing" in result.content


def test_arguments_are_checked_against_the_servers_schema(sdk_spec):
    lookup = next(t for t in mcp_tools(sdk_spec) if t.name == "lookup")
    result = lookup.execute({"query": "q", "filters": {"tags": []}}, CONTEXT)
    assert result.is_error and "filters" in result.content and "'language' is a required property" in result.content


def test_discovery_happens_once_per_process(sdk_spec):
    first = mcp_tools(sdk_spec)
    second = mcp_tools(sdk_spec)
    assert first[0].server is second[0].server


def test_a_dead_stdio_server_is_an_error_result_then_comes_back():
    echo = next(t for t in mcp_tools(stdio_spec()) if t.name == "echo")
    echo.server.session().transport._proc.kill()
    dead = echo.execute({"text": "x"}, CONTEXT)
    assert dead.is_error and "sdk-stdio" in dead.content and "exited" in dead.content
    assert echo.execute({"text": "again"}, CONTEXT).content == "echo: again"  # a new process


# -- servers that are not there ---------------------------------------------------------------------

def test_a_dead_http_server_at_discovery_names_the_server():
    spec = ToolSpec(name="mcp", extra={"server_name": "docs", "server_url": "http://127.0.0.1:9/mcp"})
    with pytest.raises(ToolServerUnavailable, match="MCP server 'docs'.*127.0.0.1:9"):
        mcp_tools(spec)


def test_a_stdio_server_that_exits_at_once_names_the_server_and_its_last_words():
    spec = ToolSpec(name="mcp", extra={"server_name": "broken", "command": sys.executable,
                                       "args": ["-c", "import sys; sys.exit('no config file')"]})
    with pytest.raises(ToolServerUnavailable, match="MCP server 'broken'.*no config file"):
        mcp_tools(spec)


def test_a_missing_command_names_the_server():
    spec = ToolSpec(name="mcp", extra={"server_name": "ghost", "command": "/nonexistent/mcp-server"})
    with pytest.raises(ToolServerUnavailable, match="MCP server 'ghost'.*cannot start"):
        mcp_tools(spec)


def test_an_http_server_that_dies_after_discovery_gives_an_error_result():
    with FakeMcpHttp() as fake:
        alpha = next(t for t in mcp_tools(ToolSpec(name="mcp", extra={"server_name": "fake", "server_url": fake.url}))
                     if t.name == "alpha")
    result = alpha.execute({"x": 1}, CONTEXT)
    assert result.is_error and "MCP server 'fake'" in result.content


def test_headers_from_env_references_reach_the_server(monkeypatch):
    monkeypatch.setenv("DOCS_TOKEN", "Bearer t0k")
    with FakeMcpHttp() as fake:
        spec = ToolSpec(name="mcp", extra={"server_url": fake.url, "header_Authorization": "env:DOCS_TOKEN"})
        mcp_tools(spec)
    with pytest.raises(ConfigError, match="NOT_SET_TOKEN"):
        mcp_tools(ToolSpec(name="mcp", extra={"server_url": "http://127.0.0.1:9/mcp",
                                              "header_X-Key": "env:NOT_SET_TOKEN"}))


# -- the protocol's corners, with the scripted fake -------------------------------------------------

def session_on(fake: FakeMcpHttp) -> McpSession:
    return McpSession(HttpTransport(fake.url, {}, server="fake"))


def test_handshake_headers_and_pagination():
    with FakeMcpHttp() as fake:
        session = session_on(fake)
        names = [t["name"] for t in session.list_tools()]
        session.close()
    assert names == ["alpha", "beta"]
    assert fake.methods() == ["initialize", "notifications/initialized", "tools/list", "tools/list"]
    init, *rest = [s for s in fake.seen if s["verb"] == "POST"]
    assert init["session"] is None and init["version"] is None
    assert all(s["session"] == "session-1" and s["version"] == "2025-11-25" for s in rest)
    assert fake.seen[-1]["verb"] == "DELETE" and fake.seen[-1]["session"] == "session-1"


def test_a_server_on_the_2025_06_18_revision_is_spoken_to_in_it():
    with FakeMcpHttp(version="2025-06-18") as fake:
        session = session_on(fake)
        assert [t["name"] for t in session.list_tools()] == ["alpha", "beta"]
        result = session.call_tool("alpha", {"x": 2}, timeout=10)
        session.close()
    assert not result.is_error
    init, *rest = [s for s in fake.seen if s["verb"] == "POST"]
    assert rest and all(s["version"] == "2025-06-18" for s in rest)


def test_a_server_on_an_unknown_revision_is_refused_by_name():
    with FakeMcpHttp(version="2024-11-05") as fake:
        with pytest.raises(ToolServerUnavailable, match="MCP server 'fake'.*'2024-11-05'"):
            mcp_tools(ToolSpec(name="mcp", extra={"server_name": "fake", "server_url": fake.url}))


def test_sse_reply_skips_priming_and_notifications_and_answers_ping():
    with FakeMcpHttp(mode="sse") as fake:
        session = session_on(fake)
        result = session.call_tool("alpha", {"x": 7}, timeout=10)
        session.close()
    assert result.content == "alpha got 7\nsecond part" and not result.is_error
    assert fake.client_answers == [{"jsonrpc": "2.0", "id": "srv-1", "result": {}}]


def test_is_error_from_the_server_is_kept():
    with FakeMcpHttp(mode="sse") as fake:
        session = session_on(fake)
        result = session.call_tool("beta", {}, timeout=10)
        session.close()
    assert result.is_error and result.content == "beta is broken"


def test_a_cut_stream_is_resumed_with_last_event_id():
    with FakeMcpHttp(mode="resume") as fake:
        session = session_on(fake)
        result = session.call_tool("alpha", {"x": 1}, timeout=10)
        session.close()
    assert result.content.startswith("alpha got 1")
    resumed = [s for s in fake.seen if s["verb"] == "GET"]
    assert resumed and resumed[0]["last_event_id"] == "e1"


def test_an_expired_session_is_initialized_again():
    with FakeMcpHttp() as fake:
        session = session_on(fake)
        session.list_tools()
        fake.forget_sessions()  # the next request gets 404
        result = session.call_tool("alpha", {"x": 2}, timeout=10)
        session.close()
    assert result.content.startswith("alpha got 2")
    assert fake.methods().count("initialize") == 2
    last_call = [s for s in fake.seen if s["method"] == "tools/call"][-1]
    assert last_call["session"] == "session-2"


def test_pagination_reaches_the_model_through_the_factory():
    with FakeMcpHttp() as fake:
        tools = mcp_tools(ToolSpec(name="mcp", extra={"server_url": fake.url, "server_name": "fake"}))
        assert [t.name for t in tools] == ["alpha", "beta"]
        result = tools[0].execute({"x": 3}, CONTEXT)
    assert result.content == "alpha got 3\nsecond part"
