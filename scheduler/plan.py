"""Planning: Kahn's algorithm splits the crew's DAG into waves; a cycle is named by its path."""

from __future__ import annotations

from crewq.config.errors import CycleError
from crewq.config.schema import Crew


def waves(crew: Crew) -> list[list[str]]:
    """Agents grouped so that each wave depends only on earlier waves; declaration order kept.
    Standby agents are in no wave: each runs in the wave of the agent it stands in for."""
    order = [a.id for a in crew.scheduled()]
    deps = {a.id: set(a.depends_on) for a in crew.scheduled()}
    done: set[str] = set()
    result: list[list[str]] = []
    while len(done) < len(order):
        ready = [a for a in order if a not in done and deps[a] <= done]
        if not ready:
            raise CycleError(find_cycle({a: deps[a] - done for a in order if a not in done}))
        result.append(ready)
        done.update(ready)
    return result


def find_cycle(deps: dict[str, set[str]]) -> list[str]:
    """One cycle among `deps` (agent → what it depends on), as a path that ends where it starts."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(deps.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep in deps and state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in deps:
        if state.get(start) is None:
            found = visit(start)
            if found:
                return found
    raise AssertionError("no cycle found among the remaining agents")
