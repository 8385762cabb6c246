"""Load a crew file: YAML with line numbers, typed validation, and errors a person can act on.

Every error names the file, the line and the key path (`agents[1].depends_on[0]`), and a typo gets
the nearest valid key. Checks that need the workers (tools, providers) or the planner (cycles) run
in `crewq.scheduler.validate`, with the same `LoadedCrew.error()` to place them.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, cast

import yaml
from pydantic import BaseModel, ValidationError

from . import envref, safeyaml
from .errors import ConfigError
from .limits import DEFAULT_LIMITS, Limits
from .schema import Crew

Loc = tuple[str | int, ...]


def key_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def suggest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def is_from_file(file: str) -> bool:
    """A crew loaded from a file on disk, not from text (named "<crew>", "<submitted crew>")."""
    return not file.startswith("<")


@dataclass(frozen=True)
class LoadedCrew:
    crew: Crew
    file: str
    lines: dict[Loc, int] = field(default_factory=dict, repr=False)
    warnings: tuple[str, ...] = ()  # not errors: e.g. an unset env: in a typed key that took its default

    @property
    def from_file(self) -> bool:
        return is_from_file(self.file)

    @property
    def source_dir(self) -> str | None:
        """The crew file's folder, where its env_file and relative paths start; None for a crew sent as
        text (`crewq.submit`, Flower, `Client.submit(text)`): it has no folder, and the process's own
        folder (a worker's cwd and its .env) is not the sender's."""
        return str(Path(self.file).resolve().parent) if self.from_file else None

    def line_of(self, loc: Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def error(self, loc: Loc, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line_of(loc), key=key_path(loc) or None, hint=hint)


def load_crew(path: str | Path, limits: Limits = DEFAULT_LIMITS, env_file: str | None = None) -> LoadedCrew:
    """Read and validate a crew file. Raises ConfigError (all problems found, the first on top).
    `env_file` replaces runtime.env_file (Routex's `--env-file`)."""
    path = Path(path)
    try:
        # Checked before reading: a huge file is refused without being read into memory.
        limits.check_size("max_file_bytes", path.stat().st_size, "the crew file", file=str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("crew file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read crew file: {exc}", file=str(path)) from None
    return load_crew_text(text, str(path), limits, env_file)


def load_crew_text(text: str, file: str = "<crew>", limits: Limits = DEFAULT_LIMITS,
                   env_file: str | None = None) -> LoadedCrew:
    if not isinstance(text, str):
        raise ConfigError(f"a crew is YAML text, not {type(text).__name__}", file=file)
    data, lines = _parse_yaml(text, file, limits)
    if not isinstance(data, dict):
        raise ConfigError("a crew file is a mapping with runtime, task, agents and tools", file=file, line=1)
    if env_file is not None:
        runtime = cast(dict, data.get("runtime")) if isinstance(data.get("runtime"), dict) else {}
        data["runtime"] = {**runtime, "env_file": env_file}
    context: dict[str, Any] = {"env": _load_environment(data, file)}
    try:
        crew = Crew.model_validate(data, context=context)
    except ValidationError as exc:
        raise _from_validation(exc, file, lines) from None
    loaded = LoadedCrew(crew=crew, file=file, lines=lines)
    warnings = tuple(str(loaded.error(loc, f"env:{var} is not set; the default is used"))
                     for loc, var in _unset_refs(data, context.get("unset", []), ()))
    loaded = LoadedCrew(crew=crew, file=file, lines=lines, warnings=warnings)
    problems = list(_cross_checks(loaded, data))
    if problems:
        raise ConfigError.combine(problems)
    return loaded


def _load_environment(data: dict, file: str) -> dict[str, str] | None:
    """The environment typed `env:` keys are read from: the process over the crew's env_file (Routex
    reads its .env before the rest of the file). A bad env_file is reported by the cross checks."""
    runtime = cast(dict, data.get("runtime")) if isinstance(data.get("runtime"), dict) else {}
    env_file = runtime.get("env_file")
    if not is_from_file(file) or not isinstance(env_file, str) or not env_file:
        return None
    try:
        return envref.environment(Path(file).resolve().parent, env_file)
    except ConfigError:
        return None


def _unset_refs(value: Any, unset: list[tuple[str, str]], loc: Loc) -> Iterable[tuple[Loc, str]]:
    """Where in the file the typed keys whose variable was unset are (for the warnings' line numbers)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and envref.is_ref(v):
                var = v[4:].split(":-", 1)[0]
                if (str(k), var) in unset:
                    yield loc + (str(k),), var
            else:
                yield from _unset_refs(v, unset, loc + (str(k),))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _unset_refs(v, unset, loc + (i,))


def _parse_yaml(text: str, file: str, limits: Limits) -> tuple[Any, dict[Loc, int]]:
    node, data = safeyaml.parse(text, file, limits)
    lines: dict[Loc, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    # (Duplicate keys never get here: safeyaml refuses them, naming both lines.)
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = loc + (str(key_node.value),)
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, loc + (i,), lines)


def _fields_at(loc: Loc) -> list[str]:
    """The valid keys of the model at `loc` (for "did you mean")."""
    model: Any = Crew
    for part in loc:
        if isinstance(part, int):
            continue
        fld = model.model_fields.get(part) if _is_model(model) else None
        if fld is None:
            return []
        model = _inner_model(fld.annotation)
    if not _is_model(model):
        return []
    names = []
    for name, fld in model.model_fields.items():
        names.append(name)
        choices = getattr(fld.validation_alias, "choices", None) or []
        names += [c for c in choices if isinstance(c, str)]
    return names


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _inner_model(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _from_validation(exc: ValidationError, file: str, lines: dict[Loc, int]) -> ConfigError:
    loaded_lines = LoadedCrew.__new__(LoadedCrew)
    object.__setattr__(loaded_lines, "lines", lines)
    object.__setattr__(loaded_lines, "file", file)
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
        hint = None
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
            hint = suggest(str(loc[-1]), _fields_at(loc[:-1]))
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
        problems.append(loaded_lines.error(loc, message, hint))
    return ConfigError.combine(problems)


# pydantic adds the union member's name to `loc`; it means nothing to a user.
_UNION_TAGS = {"ScriptError", "literal['crash']", "float", "str", "constrained-str"}


def _cross_checks(loaded: LoadedCrew, data: dict) -> Iterable[ConfigError]:
    crew = loaded.crew
    ids: dict[str, int] = {}
    for i, agent in enumerate(crew.agents):
        if agent.id in ids:
            yield loaded.error(("agents", i, "id"), f"duplicate agent id {agent.id!r} (first at agents[{ids[agent.id]}])")
        ids.setdefault(agent.id, i)
    for i, agent in enumerate(crew.agents):
        dep_key = "depends" if "depends" in (data["agents"][i] or {}) else "depends_on"
        for j, dep in enumerate(agent.depends_on):
            if dep not in ids:
                yield loaded.error(("agents", i, dep_key, j), f"agent {agent.id!r} depends on unknown agent {dep!r}",
                                   suggest(dep, ids))
    yield from _check_fallbacks(loaded, data, ids)
    names: dict[str, int] = {}
    for i, tool in enumerate(crew.tools):
        if tool.extra.get("server_name"):
            continue  # several servers may share a factory name such as "mcp"
        if tool.name in names:
            yield loaded.error(("tools", i, "name"), f"duplicate tool {tool.name!r} (first at tools[{names[tool.name]}])")
        names.setdefault(tool.name, i)
    yield from _check_env_refs(loaded, data, ())
    if crew.runtime.env_file and loaded.source_dir is None:
        yield loaded.error(("runtime", "env_file"), "a crew sent as text has no folder, so no env_file is read: "
                           "leave it out (the variables come from the workers' environment)")
    elif crew.runtime.env_file and loaded.source_dir:
        try:
            envref.load_env_file(loaded.source_dir, crew.runtime.env_file)
        except ConfigError as exc:
            yield loaded.error(("runtime", "env_file"), exc.message)


def _check_fallbacks(loaded: LoadedCrew, data: dict, ids: dict[str, int]) -> Iterable[ConfigError]:
    """`fallback:` names standby agents of the crew; a standby runs only in another's place, so nothing
    scheduled depends on one, a fallback needs no output of the agent it replaces (nor of one that runs
    after it), and fallbacks of fallbacks never lead back round."""
    crew = loaded.crew
    standby = {a.id for a in crew.agents if a.standby}
    deps = {a.id: set(a.depends_on) for a in crew.agents}

    def upstream(agent_id: str) -> set[str]:
        found: set[str] = set()
        frontier = [agent_id]
        while frontier:
            for dep in deps.get(frontier.pop(), ()):
                if dep not in found:
                    found.add(dep)
                    frontier.append(dep)
        return found

    for i, agent in enumerate(crew.agents):
        dep_key = "depends" if "depends" in (data["agents"][i] or {}) else "depends_on"
        for j, dep in enumerate(agent.depends_on):
            if dep in standby:
                yield loaded.error(("agents", i, dep_key, j), f"agent {agent.id!r} depends on standby agent {dep!r}: "
                                   "a standby runs only in another agent's place (name it in a fallback: list)")
        for j, name in enumerate(agent.fallback):
            loc = ("agents", i, "fallback", j)
            if name not in ids:
                yield loaded.error(loc, f"agent {agent.id!r} names unknown fallback agent {name!r}", suggest(name, ids))
            elif name == agent.id:
                yield loaded.error(loc, f"agent {agent.id!r} names itself as its fallback")
            elif name not in standby:
                yield loaded.error(loc, f"agent {agent.id!r}'s fallback {name!r} is not a standby agent: "
                                   f"set standby: true on {name!r}, or it would also run on its own")
        if agent.standby:
            continue
        # Every standby that may end up standing in for this agent (its fallbacks, theirs, ...).
        before = upstream(agent.id)
        for name, through in _fallback_closure(crew, agent.id):
            via = f" (through {' → '.join(through)})" if through else ""
            if agent.id in upstream(name):
                yield loaded.error(("agents", i, "fallback"), f"agent {agent.id!r}'s fallback {name!r}{via} depends "
                                   f"on {agent.id!r}, the agent it stands in for: it could never run")
            elif late := sorted(deps.get(name, set()) - before):
                yield loaded.error(("agents", i, "fallback"), f"agent {agent.id!r}'s fallback {name!r}{via} depends "
                                   f"on {', '.join(late)}, not upstream of {agent.id!r}: its output would not be ready")
    for i, agent in enumerate(crew.agents):  # fallbacks of fallbacks: a cycle would never end
        cycle = _fallback_cycle(crew, agent.id)
        if cycle and len(cycle) > 2 and agent.id == min(cycle):  # once per cycle; naming itself is reported above
            yield loaded.error(("agents", i, "fallback"), "fallback cycle: " + " → ".join(cycle))


def _fallback_closure(crew: Crew, root: str) -> list[tuple[str, list[str]]]:
    """Each agent reachable from `root` through `fallback:` lists, with the fallbacks in between."""
    by_id = {a.id: a for a in crew.agents}
    found: list[tuple[str, list[str]]] = []
    seen = {root}
    stack: list[tuple[str, list[str]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        for nxt in by_id[node].fallback if node in by_id else ():
            if nxt not in seen and nxt in by_id:
                seen.add(nxt)
                found.append((nxt, path))
                stack.append((nxt, path + [nxt]))
    return found


def _fallback_cycle(crew: Crew, start: str) -> list[str] | None:
    """A path of fallbacks from `start` back to `start`, if there is one."""
    by_id = {a.id: a for a in crew.agents}
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in by_id[node].fallback if node in by_id else ():
            if nxt == start:
                return path + [start]
            if nxt not in seen and nxt in by_id:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def _check_env_refs(loaded: LoadedCrew, value: Any, loc: Loc) -> Iterable[ConfigError]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _check_env_refs(loaded, v, loc + (str(k),))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _check_env_refs(loaded, v, loc + (i,))
    elif isinstance(value, str):
        try:
            envref.check_ref(value)
        except ValueError as exc:
            yield loaded.error(loc, str(exc))
