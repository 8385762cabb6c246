"""`crewq plan --format text|mermaid|dot`: waves, edges, each agent's provider, model and tools."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from crewq.scheduler.cli import main

from helpers import write_crew

DEMO = Path(__file__).resolve().parent.parent / "config" / "crews" / "demo.yaml"
EDGES = {("planner", "researcher"), ("planner", "outliner"), ("researcher", "writer"), ("outliner", "writer")}


def plan(*args: str) -> str:
    result = CliRunner().invoke(main, ["plan", *args])
    assert result.exit_code == 0, result.output
    return result.output


def mermaid_graph(text: str) -> tuple[list[tuple[str, list[str]]], dict[str, str], set[tuple[str, str]]]:
    """(waves as (title, node ids), node id → label, edges) from flowchart text."""
    lines = text.strip().splitlines()
    assert lines[0] == "flowchart LR"
    waves, labels, edges, current = [], {}, set(), None
    for line in lines[1:]:
        if m := re.fullmatch(r'  subgraph (\w+)\["(.*)"\]', line):
            current = (m.group(2), [])
            waves.append(current)
        elif line == "  end":
            current = None
        elif m := re.fullmatch(r'    (\w+)\["(.*)"\]', line):
            assert current is not None, f"node outside a wave: {line}"
            current[1].append(m.group(1))
            labels[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"  (\w+) --> (\w+)", line):
            edges.add((m.group(1), m.group(2)))
        else:
            raise AssertionError(f"unexpected mermaid line: {line!r}")
    return waves, labels, edges


def test_mermaid_of_the_demo_has_its_waves_edges_and_tools():
    waves, labels, edges = mermaid_graph(plan(str(DEMO), "--format", "mermaid"))
    names = {node: label.split("<br/>")[0] for node, label in labels.items()}
    assert [(title, [names[n] for n in nodes]) for title, nodes in waves] == [
        ("wave 0", ["planner"]), ("wave 1", ["researcher", "outliner"]), ("wave 2", ["writer"])]
    assert {(names[a], names[b]) for a, b in edges} == EDGES
    by_name = {names[n]: label.split("<br/>") for n, label in labels.items()}
    assert by_name["researcher"] == ["researcher", "scripted", "tools: list_files, read_file"]
    assert by_name["writer"] == ["writer", "scripted"]


def test_awkward_agent_ids_make_valid_distinct_mermaid_and_dot_ids(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: anthropic, model: claude-sonnet-4-5}
        agents:
          - {id: end}
          - {id: fact.check, depends_on: [end], llm: {provider: ollama, model: "llama3.1"}}
          - {id: fact-check, depends_on: [end]}
        """)
    waves, labels, edges = mermaid_graph(plan(str(path), "--format", "mermaid"))
    assert len(set(labels)) == 3 and "end" not in labels
    names = {node: label.split("<br/>")[0] for node, label in labels.items()}
    assert {(names[a], names[b]) for a, b in edges} == {("end", "fact.check"), ("end", "fact-check")}
    assert labels[next(n for n in labels if names[n] == "fact.check")] == "fact.check<br/>ollama/llama3.1"

    dot = plan(str(path), "--format", "dot")
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    assert dot.count("subgraph cluster_wave") == 2 and 'label="wave 1";' in dot
    assert '"end" -> "fact.check";' in dot and '"end" -> "fact-check";' in dot
    assert '"fact.check" [label="fact.check\\nollama/llama3.1"];' in dot
    assert dot.count("{") == dot.count("}")


def test_text_plan_counts_read_right(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {name: solo, llm_provider: scripted}
        agents:
          - {id: a, script: [{text: hi}]}
        """)
    assert plan(str(path)).splitlines()[0] == "solo: 1 agent in 1 wave"
    validated = CliRunner().invoke(main, ["validate", str(path)])
    assert validated.output.strip() == f"{path}: ok (1 agent in 1 wave)"
