"""The whole check of a crew file before anything runs: schema (config.loader), the plan (cycles),
tools and providers (the workers' registries), and the inputs its task needs."""

from __future__ import annotations

import re
from pathlib import Path

from crewq.config import envref
from crewq.config.errors import ConfigError, CycleError
from crewq.config.limits import DEFAULT_LIMITS, Limits
from crewq.config.loader import LoadedCrew, load_crew, suggest

from crewq.workers.llm.registry import provider_names
from crewq.workers.tools.registry import config_problem, unknown_tools

from . import plan

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> tuple[LoadedCrew, list[list[str]]]:
    """Load a crew file and check everything that can be checked offline. Returns (crew, waves)."""
    loaded = load_crew(path, limits)
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
        provider = crew.llm_of(agent).provider
        loc = ("agents", i, "llm", "provider") if agent.llm and agent.llm.provider else ("runtime", "llm_provider")
        if provider is None:
            problems.append(loaded.error(("agents", i), f"agent {agent.id!r} has no LLM provider: set "
                                         "runtime.llm_provider or the agent's llm.provider"))
        elif envref.is_ref(provider):
            pass  # resolved on the worker, where its environment is
        elif provider not in known:
            problems.append(loaded.error(loc, f"unknown LLM provider {provider!r} (agent {agent.id!r}); "
                                         f"known: {', '.join(known)}", suggest(provider, known)))
        elif provider == "scripted" and not agent.script:
            problems.append(loaded.error(("agents", i), f"agent {agent.id!r} uses the scripted provider "
                                         "but has no script:"))
    if problems:
        first = problems[0]
        if len(problems) > 1:
            first.args = ("\n".join(str(p) for p in problems),)
        raise first
    return waves


def render_task(loaded: LoadedCrew, inputs: dict[str, str], override: str | None = None) -> str:
    """The task text with {placeholders} filled from inputs; a missing input is named."""
    text = override if override is not None else loaded.crew.task.input

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in inputs:
            raise loaded.error(("task", "input"), f"the task uses {{{name}}} but no value was given",
                               f"pass --input {name}=...")
        return inputs[name]

    return _PLACEHOLDER.sub(fill, text)
