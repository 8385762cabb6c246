"""Tool names → factories, and the toolbox of one agent.

A factory takes the tool's `ToolSpec` from the crew file and returns the tools it provides (one
for a built-in; several for a server that publishes many). An agent's `tools:` entry names a
built-in, a `tools[]` entry by its `name`, an MCP server by its `extra.server_name` (every tool it
lists), or one MCP tool by the name the server gives it (Routex's way), `server_name.tool` when
two servers offer it. Offline, such a name cannot be checked: `validate` accepts it when the crew
has an MCP server, and `plan` / `run --dry-run` connect and name any tool no server offers.

Installed packages add tools through the `crewq.tools` entry point group: the entry point's name
is the tool name, its value a factory `f(spec) -> list[Tool]` or a `Tool` subclass. They are
imported only when a crew uses them; the list of them is read once per process
(`rescan_entry_points()` reads it again).
"""

from __future__ import annotations

import functools
import inspect
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from crewq.config.errors import ConfigError
from crewq.config.loader import suggest
from crewq.config.policy import policy_of
from crewq.config.schema import Agent, Crew, ToolSpec

from .base import Tool

if TYPE_CHECKING:
    from .mcp import McpTool

ToolFactory = Callable[[ToolSpec], list[Tool]]
ENTRY_POINT_GROUP = "crewq.tools"


def _builtin(module: str, name: str) -> ToolFactory:
    """A built-in imported when first built: checking a crew file (`crewq validate`) needs only the
    names, and the web tools pull in httpx (with its CLI's rich and pygments), ~0.3 s."""
    def factory(spec: ToolSpec) -> list[Tool]:
        return [getattr(import_module(module, __package__), name)(spec)]
    return factory


def _mcp(spec: ToolSpec, env: Mapping[str, str] | None = None) -> list[Tool]:
    from .mcp import mcp_tools
    return list(mcp_tools(spec, env))


# tool name -> (module, class) of each built-in
_BUILT_INS = {"read_file": (".files", "ReadFile"), "write_file": (".files", "WriteFile"),
              "list_files": (".files", "ListFiles"), "web_search": (".web_search", "WebSearch"),
              "wikipedia": (".wikipedia", "Wikipedia"), "http_request": (".http_request", "HttpRequest"),
              "read_url": (".read_url", "ReadUrl"), "brave_search": (".brave_search", "BraveSearch"),
              "scrape": (".scrape", "Scrape"), "translate": (".translate", "Translate"),
              "send_email": (".send_email", "SendEmail"), "generate_image": (".generate_image", "GenerateImage"),
              "summarise": (".summarise", "Summarise")}
_FACTORIES: dict[str, ToolFactory] = {**{name: _builtin(*where) for name, where in _BUILT_INS.items()}, "mcp": _mcp}
# Factories that resolve `env:` references while building (discovery), so they get the env.
_WANTS_ENV = {"mcp"}


def register_tool(name: str, factory: ToolFactory, *, wants_env: bool = False) -> None:
    _FACTORIES[name] = factory
    if wants_env:
        _WANTS_ENV.add(name)


@functools.lru_cache(maxsize=1)
def _entry_points() -> Mapping[str, EntryPoint]:
    # Scanning every installed distribution's metadata costs ~20 ms: once per process, not per check.
    return MappingProxyType({ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)})


def rescan_entry_points() -> None:
    """Forget the installed packages' tools, so the next lookup scans again (after installing one)."""
    _entry_points.cache_clear()


def _known() -> set[str]:
    return set(_FACTORIES) | set(_entry_points())


def builtin_names() -> list[str]:
    """Every tool name a crew may use without a `python:` key (built-ins and installed packages)."""
    return sorted(_known())


def source_of(name: str) -> str:
    if name in _FACTORIES:
        return "builtin"
    ep = _entry_points().get(name)
    dist = getattr(getattr(ep, "dist", None), "name", None)
    return f"package {dist}" if dist else "package"


def spec_for(crew: Crew, name: str) -> ToolSpec | None:
    for spec in crew.tools:
        if spec.name == name or spec.extra.get("server_name") == name:
            return spec
    return None


def specs_for(crew: Crew, name: str) -> list[ToolSpec]:
    """Every `tools[]` entry a name refers to: `mcp` means every MCP server named just `mcp`."""
    by_server = [s for s in crew.tools if s.extra.get("server_name") == name]
    return by_server or [s for s in crew.tools if s.name == name]


def _mcp_specs(crew: Crew) -> list[ToolSpec]:
    return [s for s in crew.tools if not s.python and s.name in _WANTS_ENV]


def _declared(crew: Crew) -> set[str]:
    return _known() | {s.name for s in crew.tools} | {
        s.extra["server_name"] for s in crew.tools if s.extra.get("server_name")}


def mcp_tool_names(crew: Crew) -> list[tuple[int, int, str]]:
    """(agent index, tool index, name) of every name an agent gives that only an MCP server can provide."""
    if not _mcp_specs(crew):
        return []
    known = _declared(crew)
    return [(i, j, name) for i, agent in enumerate(crew.agents) for j, name in enumerate(agent.tools)
            if name not in known]


def unknown_tools(crew: Crew) -> list[tuple[int, int, str, str | None]]:
    """(agent index, tool index, name, hint) for every tool an agent names that nothing provides
    (offline: a name an MCP server of the crew may provide is not unknown yet)."""
    factories = _known()
    known = _declared(crew)
    maybe_mcp = {name for _, _, name in mcp_tool_names(crew)}
    found = []
    for i, agent in enumerate(crew.agents):
        for j, name in enumerate(agent.tools):
            if name not in known and name not in maybe_mcp:
                found.append((i, j, name, suggest(name, known)))
    for index, spec in enumerate(crew.tools):
        if not spec.python and spec.name not in factories:
            found.append((-1, index, spec.name, suggest(spec.name, factories)))
    return found


def config_problem(spec: ToolSpec) -> str | None:
    """A mistake in a `tools[]` entry that can be seen before anything runs, or None.

    Offline only: an MCP server is not contacted (a dead one is reported where it is discovered),
    and a `python:` tool is not imported (the module may live only on the workers)."""
    if spec.python:
        module, _, attr = spec.python.partition(":")
        return None if module and attr else f"python tool {spec.python!r} must look like 'package.module:function'"
    if spec.name in _WANTS_ENV:  # MCP: exactly one way to reach the server
        if bool(spec.extra.get("server_url")) == bool(spec.extra.get("command")):
            return "an MCP server needs extra.server_url or extra.command (one of them)"
        return None
    try:
        build_tools(spec)
    except ConfigError as exc:
        return exc.message
    return None


def config_warnings(spec: ToolSpec) -> list[str]:
    """The `warning()` of each tool a `tools[]` entry builds, offline (no MCP, no python: import)."""
    if spec.python or spec.name in _WANTS_ENV or config_problem(spec):
        return []
    return [w for w in (t.warning() for t in build_tools(spec)) if w]


def build_tools(spec: ToolSpec, env: Mapping[str, str] | None = None) -> list[Tool]:
    if spec.python:
        policy = policy_of(env)
        if policy is not None:  # checked before the module is imported: importing runs its code
            policy.check_python_tool(spec.python, key=f"tools.{spec.name}.python")
        from .python_tool import PythonTool
        return [PythonTool(spec)]
    factory = _FACTORIES.get(spec.name)
    if factory is None:
        factory = _load_entry_point(spec.name)
    if spec.name in _WANTS_ENV:
        return list(factory(spec, env))  # type: ignore[call-arg]
    return list(factory(spec))


def _load_entry_point(name: str) -> ToolFactory:
    ep = _entry_points().get(name)
    if ep is None:
        raise ConfigError(f"unknown tool {name!r}", key=f"tools.{name}", hint=suggest(name, _known()))
    try:
        target: Any = ep.load()
    except Exception as exc:  # a broken plugin is the user's to fix; say which one
        raise ConfigError(f"tool {name!r} from package entry point {ep.value!r} cannot be loaded: {exc}",
                          key=f"tools.{name}") from None
    if inspect.isclass(target) and issubclass(target, Tool):
        return lambda spec: [target(spec)]
    if not callable(target):
        raise ConfigError(f"entry point {ep.value!r} is neither a Tool subclass nor a factory", key=f"tools.{name}")

    def factory(spec: ToolSpec) -> list[Tool]:
        made = target(spec)
        tools = [made] if isinstance(made, Tool) else list(made)
        if not all(isinstance(t, Tool) for t in tools):
            raise ConfigError(f"entry point {ep.value!r} returned something that is not a Tool", key=f"tools.{name}")
        return tools
    return factory


def toolbox(crew: Crew, agent: Agent, env: Mapping[str, str] | None = None) -> dict[str, Tool]:
    """The tools one agent may call, by the name the model sees.

    `env` resolves `env:` references needed to build tools (MCP servers' headers); None means
    this process's environment.
    """
    tools: dict[str, Tool] = {}
    seen: set[int] = set()
    known = _declared(crew)
    for name in agent.tools:
        if name not in known and _mcp_specs(crew):
            _add(tools, mcp_tool_by_name(crew, name, env))
            continue
        for spec in specs_for(crew, name) or [ToolSpec(name=name)]:
            if id(spec) in seen:
                continue
            seen.add(id(spec))
            for tool in build_tools(spec, env):
                _add(tools, tool)
    return tools


def mcp_offers(crew: Crew, env: Mapping[str, str] | None = None) -> list[McpTool]:
    """Every tool the crew's MCP servers list (connects; discovery is cached per process)."""
    from .mcp import McpTool
    return [t for spec in _mcp_specs(crew) for t in build_tools(spec, env) if isinstance(t, McpTool)]


def mcp_tool_by_name(crew: Crew, name: str, env: Mapping[str, str] | None = None) -> McpTool:
    """The one MCP tool `name` (or `server_name.tool`) means; a ConfigError names what is offered."""
    offers = mcp_offers(crew, env)
    matches = [t for t in offers if t.name == name] or [
        t for t in offers if f"{t.server_name}.{t.name}" == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        both = " or ".join(f"{t.server_name}.{t.name}" for t in matches)
        raise ConfigError(f"tool {name!r} is offered by {len(matches)} MCP servers: name it {both}", key="tools")
    names = sorted({t.name for t in offers})
    raise ConfigError(f"no MCP server of the crew offers a tool {name!r}; they offer: {', '.join(names) or 'none'}",
                      key="tools", hint=suggest(name, names))


def _add(tools: dict[str, Tool], tool: Tool) -> None:
    """On a name clash an MCP tool steps aside as `server_name.tool` (its wire name is kept)."""
    existing = tools.get(tool.name)
    if existing is None:
        tools[tool.name] = tool
        return
    from .mcp import McpTool
    if isinstance(tool, McpTool):
        tools.setdefault(f"{tool.server_name}.{tool.name}", tool.renamed(f"{tool.server_name}.{tool.name}"))
    elif isinstance(existing, McpTool):
        tools[tool.name] = tool
        moved = f"{existing.server_name}.{existing.name}"
        tools.setdefault(moved, existing.renamed(moved))
