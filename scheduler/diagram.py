"""Pictures of a crew's plan: Mermaid (GitHub renders it in Markdown) and Graphviz dot.

Each wave is a cluster, each agent a box naming its provider, model and tools; an edge runs from
a dependency to its dependent.
"""

from __future__ import annotations

import json

from crewq.config.schema import Agent, Crew


def _label_lines(crew: Crew, agent: Agent) -> list[str]:
    llm = crew.llm_of(agent)
    lines = [agent.id, f"{llm.provider}/{llm.model}" if llm.model else str(llm.provider)]
    if agent.tools:
        lines.append("tools: " + ", ".join(agent.tools))
    return lines


def _node_id(agent_id: str) -> str:
    """Agent ids may hold `.` and `-`, or be a Mermaid keyword (`end`): a prefixed, escaped id."""
    return "a_" + "".join(c if c.isalnum() or c == "_" else f"_{ord(c):x}_" for c in agent_id)


def mermaid(crew: Crew, waves: list[list[str]]) -> str:
    lines = ["flowchart LR"]
    for n, wave in enumerate(waves):
        lines.append(f'  subgraph wave{n}["wave {n}"]')
        for agent_id in wave:
            label = "<br/>".join(_label_lines(crew, crew.agent(agent_id))).replace('"', "#quot;")
            lines.append(f'    {_node_id(agent_id)}["{label}"]')
        lines.append("  end")
    for agent in crew.agents:
        for dep in agent.depends_on:
            lines.append(f"  {_node_id(dep)} --> {_node_id(agent.id)}")
    return "\n".join(lines)


def dot(crew: Crew, waves: list[list[str]]) -> str:
    quote = json.dumps  # a JSON string is a valid dot string: quotes and backslashes escaped
    lines = [f"digraph {quote(crew.runtime.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for n, wave in enumerate(waves):
        lines.append(f"  subgraph cluster_wave{n} {{")
        lines.append(f"    label={quote(f'wave {n}')};")
        for agent_id in wave:
            label = "\\n".join(s.replace("\\", "\\\\").replace('"', '\\"') for s in _label_lines(crew, crew.agent(agent_id)))
            lines.append(f'    {quote(agent_id)} [label="{label}"];')
        lines.append("  }")
    for agent in crew.agents:
        for dep in agent.depends_on:
            lines.append(f"  {quote(dep)} -> {quote(agent.id)};")
    lines.append("}")
    return "\n".join(lines)
