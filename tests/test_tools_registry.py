"""The registry: built-ins, tools from installed packages (entry points), MCP servers in a toolbox,
name clashes, and the rows of `crewq tools list`."""

from __future__ import annotations

import textwrap

import pytest

from crewq.config.errors import ConfigError
from crewq.config.loader import load_crew_text
from crewq.config.schema import ToolSpec
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.listing import ToolRow, list_tools
from crewq.workers.tools.mcp import McpTool, forget_servers
from crewq.workers.tools.registry import build_tools, builtin_names, rescan_entry_points, toolbox, unknown_tools

from fakes.mcp_fake_http import FakeMcpHttp

CONTEXT = ToolContext(run_id="run", agent_id="agent", idempotency_key="k")
BUILTINS = {"read_file", "write_file", "list_files", "web_search", "wikipedia", "http_request", "read_url", "mcp"}

PLUGIN = '''
from crewq.workers.tools.base import Tool


class Whisper(Tool):
    name = "whisper"
    description = "Say it quietly."
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def run(self, arguments, context):
        return arguments["text"].lower()


class Shout(Whisper):
    name = "shout"
    description = "Say it loudly."

    def run(self, arguments, context):
        return arguments["text"].upper() + "!" * int(self.spec.extra.get("bangs", 1))


def make(spec):
    return [Shout(spec)]


def double(n: int) -> int:
    """Twice n."""
    return 2 * n
'''


@pytest.fixture(autouse=True)
def fresh_cache():
    forget_servers()
    yield
    forget_servers()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed package publishing tools: a module and its dist-info, on sys.path."""
    (tmp_path / "crewq_fake_plugin.py").write_text(PLUGIN, encoding="utf-8")
    info = tmp_path / "crewq_fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crewq-fake-plugin\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [crewq.tools]
        shout = crewq_fake_plugin:make
        whisper = crewq_fake_plugin:Whisper
        broken = crewq_fake_plugin:missing
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    rescan_entry_points()  # the list of installed tools is cached per process
    yield tmp_path
    monkeypatch.undo()
    rescan_entry_points()


def test_installed_tools_are_read_once_until_a_rescan(tmp_path, monkeypatch):
    rescan_entry_points()
    assert "shout" not in builtin_names()
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "crewq_late-1.0.dist-info").mkdir()
    (tmp_path / "crewq_late-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: crewq-late\n"
                                                                   "Version: 1.0\n", encoding="utf-8")
    (tmp_path / "crewq_late-1.0.dist-info" / "entry_points.txt").write_text("[crewq.tools]\nshout = x:y\n",
                                                                           encoding="utf-8")
    assert "shout" not in builtin_names()  # installed after the first look: not scanned again
    rescan_entry_points()
    assert "shout" in builtin_names()
    monkeypatch.undo()
    rescan_entry_points()


def crew(text: str):
    return load_crew_text(textwrap.dedent(text)).crew


def test_builtin_names():
    assert BUILTINS <= set(builtin_names())


def test_entry_point_factories_and_tool_classes(plugin):
    assert {"shout", "whisper", "broken"} <= set(builtin_names())
    shout, = build_tools(ToolSpec(name="shout", extra={"bangs": 3}))
    assert shout.execute({"text": "hey"}, CONTEXT).content == "HEY!!!"
    whisper, = build_tools(ToolSpec(name="whisper"))
    assert whisper.execute({"text": "HEY"}, CONTEXT).content == "hey"


def test_a_broken_entry_point_is_a_config_error_naming_it(plugin):
    with pytest.raises(ConfigError, match="crewq_fake_plugin:missing"):
        build_tools(ToolSpec(name="broken"))


def test_unknown_tools_know_entry_points(plugin):
    c = crew("""
        agents: [{id: a, tools: [shout, shuot]}]
    """)
    assert unknown_tools(c) == [(0, 1, "shuot", "did you mean 'shout'?")]
    with pytest.raises(ConfigError, match="unknown tool 'shuot'"):
        build_tools(ToolSpec(name="shuot"))


def test_an_agent_gets_all_of_a_servers_tools_by_server_name_or_by_mcp():
    with FakeMcpHttp() as one, FakeMcpHttp(extra_tools=["gamma"]) as two:
        c = crew(f"""
            agents:
              - {{id: a, tools: [one]}}
              - {{id: b, tools: [mcp]}}
            tools:
              - {{name: mcp, extra: {{server_name: one, server_url: "{one.url}"}}}}
              - {{name: mcp, extra: {{server_name: two, server_url: "{two.url}"}}}}
        """)
        assert list(toolbox(c, c.agents[0])) == ["alpha", "beta"]
        # `mcp` names every MCP server; the second one's clashing tools step aside.
        tools = toolbox(c, c.agents[1])
        assert list(tools) == ["alpha", "beta", "two.alpha", "two.beta", "gamma"]
        moved = tools["two.alpha"]
        assert isinstance(moved, McpTool) and moved.wire_name == "alpha"
        assert moved.schema().name == "two.alpha"
        assert moved.execute({"x": 5}, CONTEXT).content.startswith("alpha got 5")
        assert [s["method"] for s in two.seen].count("tools/call") == 1  # the call went to server two


def test_a_builtin_keeps_its_name_and_the_mcp_tool_steps_aside():
    with FakeMcpHttp(extra_tools=["wikipedia"]) as docs:
        c = crew(f"""
            agents: [{{id: a, tools: [docs, wikipedia]}}]
            tools: [{{name: mcp, extra: {{server_name: docs, server_url: "{docs.url}"}}}}]
        """)
        tools = toolbox(c, c.agents[0])
        assert type(tools["wikipedia"]).__name__ == "Wikipedia"
        assert tools["docs.wikipedia"].execute({}, CONTEXT).content == f"wikipedia on {docs.url}"


def test_listing_without_a_crew_shows_the_builtins():
    rows = list_tools()
    names = {r.name for r in rows}
    assert BUILTINS - {"mcp"} <= names
    assert ToolRow("read_url", "builtin", "Fetch a web page and return its readable text.") in rows


def test_listing_a_crew_file_discovers_its_servers(tmp_path, plugin):
    with FakeMcpHttp() as docs:
        path = tmp_path / "crew.yaml"
        path.write_text(textwrap.dedent(f"""
            agents: [{{id: a, tools: [docs, shout, double]}}]
            tools:
              - {{name: mcp, extra: {{server_name: docs, server_url: "{docs.url}"}}}}
              - {{name: double, python: "crewq_fake_plugin:double"}}
        """), encoding="utf-8")
        rows = list_tools(path)
    assert ToolRow("alpha", "mcp docs", "first page") in rows
    assert ToolRow("beta", "mcp docs", "second page") in rows
    assert ToolRow("double", "python crewq_fake_plugin:double", "Twice n.") in rows
    assert ToolRow("shout", "package crewq-fake-plugin", "Say it loudly.") in rows


def test_listing_a_crew_with_a_dead_server_names_it_and_lists_the_rest(tmp_path):
    path = tmp_path / "crew.yaml"
    path.write_text(textwrap.dedent("""
        agents: [{id: a, tools: [docs]}]
        tools: [{name: mcp, extra: {server_name: docs, server_url: "http://127.0.0.1:9/mcp"}}]
    """), encoding="utf-8")
    rows = list_tools(path)
    dead = [r for r in rows if r.problem]
    assert [(r.name, r.source) for r in dead] == [("mcp", "mcp docs")] and "MCP server 'docs'" in dead[0].problem
    assert "read_file" in {r.name for r in rows if not r.problem}
