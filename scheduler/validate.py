"""The whole check of a crew file before anything runs: schema (config.loader), the plan (cycles),
tools and providers (the workers' registries), and the inputs its task needs."""

from __future__ import annotations

import re
from pathlib import Path

from crewq.config import envref
from crewq.config.errors import ConfigError, CycleError
from crewq.config.limits import DEFAULT_LIMITS, Limits
from crewq.config.loader import LoadedCrew, load_crew, suggest
from crewq.workers.llm.chain import MODEL_REQUIRED
from crewq.workers.llm.registry import provider_names
from crewq.workers.tools.registry import (
    config_problem,
    config_warnings,
    mcp_tool_by_name,
    mcp_tool_names,
    unknown_tools,
)

from . import plan, submission

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check(path: str | Path, env_file: str | None = None,
          limits: Limits = DEFAULT_LIMITS) -> tuple[LoadedCrew, list[list[str]]]:
    """Load a crew file and check everything that can be checked offline. Returns (crew, waves)."""
    loaded = load_crew(path, limits, env_file)
    return loaded, check_loaded(loaded)


def check_loaded(loaded: LoadedCrew) -> list[list[str]]:
    crew = loaded.crew
    problems: list[ConfigError] = []
    try:
        waves = plan.waves(crew)
    except CycleError as exc:
        index = next(i for i, a in enumerate(crew.agents) if a.id == exc.cycle[0])
        problems.append(CycleError(exc.cycle, file=loaded.file, line=loaded.line_of(("agents", index)),
                                   key=f"agents[{index}].depends_on"))
        waves = []
    missing = unknown_tools(crew)  # once: both loops below need it
    for agent_index, tool_index, name, hint in missing:
        if agent_index < 0:
            problems.append(loaded.error(("tools", tool_index, "name"), f"unknown tool {name!r}", hint))
        else:
            problems.append(loaded.error(("agents", agent_index, "tools", tool_index),
                                         f"agent {crew.agents[agent_index].id!r} uses unknown tool {name!r}", hint))
    unknown = {index for agent_index, index, _, _ in missing if agent_index < 0}
    for index, spec in enumerate(crew.tools):
        problem = None if index in unknown else config_problem(spec)
        if problem:
            problems.append(loaded.error(("tools", index), f"tool {spec.name!r}: {problem}"))
    known = provider_names()
    for i, agent in enumerate(crew.agents):
        for k, fallback in enumerate(agent.llm.fallback if agent.llm else []):
            if fallback.provider not in known and not envref.is_ref(fallback.provider):
                problems.append(loaded.error(("agents", i, "llm", "fallback", k, "provider"),
                                             f"unknown LLM provider {fallback.provider!r} in agent {agent.id!r}'s "
                                             f"fallback; known: {', '.join(known)}", suggest(fallback.provider, known)))
            elif fallback.provider in MODEL_REQUIRED and not fallback.model:
                problems.append(loaded.error(("agents", i, "llm", "fallback", k, "model"),
                                             f"agent {agent.id!r}: the {fallback.provider} provider needs a model"))
        provider = crew.llm_of(agent).provider
        if provider in MODEL_REQUIRED and not crew.llm_of(agent).model:
            problems.append(loaded.error(("agents", i, "llm", "model") if agent.llm else ("runtime", "model"),
                                         f"agent {agent.id!r}: the {provider} provider needs a model: set "
                                         "runtime.model or the agent's llm.model"))
        loc = ("agents", i, "llm", "provider") if agent.llm and agent.llm.provider else ("runtime", "llm_provider")
        if provider is None:
            problems.append(loaded.error(("agents", i), f"agent {agent.id!r} has no LLM provider: set "
                                         "runtime.llm_provider or the agent's llm.provider"))
        elif envref.is_ref(provider):
            pass  # resolved on the worker, where its environment is
        elif provider not in known:
            problems.append(loaded.error(loc, f"unknown LLM provider {provider!r} (agent {agent.id!r}); "
                                         f"known: {', '.join(known)}", suggest(provider, known)))
        elif provider == "openai-compatible" and not crew.llm_of(agent).base_url:
            problems.append(loaded.error(loc, f"agent {agent.id!r}: openai-compatible needs base_url (the server to "
                                         "send to); use provider openai for api.openai.com"))
        elif provider == "scripted" and not agent.script:
            problems.append(loaded.error(("agents", i), f"agent {agent.id!r} uses the scripted provider "
                                         "but has no script:"))
    if problems:
        raise ConfigError.combine(problems)
    return waves


def check_online(loaded: LoadedCrew) -> None:
    """What needs the network (`plan`, `run --dry-run`): every tool an agent names by an MCP server's
    tool name is offered by exactly one server of the crew. Raises ConfigError naming each one."""
    crew = loaded.crew
    names = mcp_tool_names(crew)
    if not names:
        return
    env = envref.environment(loaded.source_dir, crew.runtime.env_file)
    problems = []
    for agent_index, tool_index, name in names:
        try:
            mcp_tool_by_name(crew, name, env)
        except ConfigError as exc:
            problems.append(loaded.error(("agents", agent_index, "tools", tool_index),
                                         f"agent {crew.agents[agent_index].id!r}: {exc.message}", exc.hint))
    if problems:
        raise ConfigError.combine(problems)


def render_task(loaded: LoadedCrew, inputs: dict[str, str], override: str | None = None,
                limits: Limits | None = None) -> str:
    """The task text with each {placeholder} an input names filled in. One the inputs do not name is
    plain text, as in Routex (whose tasks never take inputs); `task_warnings` names it.
    With `limits`, a task over `max_task_chars` once filled is refused before it is built: a small
    submission ("{a}" 3000 times, a 100 KB input) must not make the worker allocate 300 MB to say no."""
    text = override if override is not None else loaded.crew.task.input
    if limits is not None:
        size = len(text) + sum(len(inputs[m.group(1)]) - len(m.group(0))
                               for m in _PLACEHOLDER.finditer(text) if m.group(1) in inputs)
        submission.check_task_size(size, limits)
    return _PLACEHOLDER.sub(lambda m: inputs.get(m.group(1), m.group(0)), text)


def task_override(loaded: LoadedCrew, task: str | None) -> str | None:
    """`--task`, else Routex's ROUTEX_TASK (the process environment over the crew's env_file), else None."""
    if task is not None:
        return task
    return envref.environment(loaded.source_dir, loaded.crew.runtime.env_file).get("ROUTEX_TASK") or None


def crew_warnings(loaded: LoadedCrew) -> list[str]:
    """What is legal but likely not what the author meant (printed by validate, plan, run, submit)."""
    crew = loaded.crew
    mcp = [loaded.error(("agents", i, "tools", j), f"{name!r} is no built-in tool: an MCP server of the crew "
                        "must offer it (`crewq plan` connects and checks)") for i, j, name in mcp_tool_names(crew)]
    unknown = {index for agent_index, index, _, _ in unknown_tools(crew) if agent_index < 0}
    tools = [loaded.error(("tools", i), f"tool {spec.name!r}: {w}") for i, spec in enumerate(crew.tools)
             if i not in unknown for w in config_warnings(spec)]
    named = {name for agent in crew.agents for name in agent.fallback}
    idle = [loaded.error(("agents", i, "standby"), f"standby agent {agent.id!r} is no agent's fallback: it never runs")
            for i, agent in enumerate(crew.agents) if agent.standby and agent.id not in named]
    return list(loaded.warnings) + [str(w) for w in mcp + tools + idle]


def task_warnings(loaded: LoadedCrew, inputs: dict[str, str], override: str | None = None) -> list[str]:
    """`crew_warnings`, and each {placeholder} of the task that no input fills."""
    text = override if override is not None else loaded.crew.task.input
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(inputs))
    return crew_warnings(loaded) + [
        str(loaded.error(("task", "input"), f"{{{name}}} is sent as written (no --input {name}=... fills it)"))
        for name in missing]
