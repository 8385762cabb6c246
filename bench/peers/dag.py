"""The DAG every peer runs: WAVES waves of WIDTH agents, each wave after every agent of the one
before (full fan-in); each agent makes an LLM call that asks for `list_files`, runs it, and makes a
second LLM call. The critical path is WAVES x 2 LLM latencies (the tool's time aside)."""

from __future__ import annotations

WAVES, WIDTH, LLM_CALLS = 4, 2, 2


def agent_id(wave: int, i: int) -> str:
    return f"w{wave}a{i}"


def parents(wave: int, width: int = WIDTH) -> list[str]:
    return [agent_id(wave - 1, j) for j in range(width)] if wave else []


def critical_path(latency: float) -> float:
    return WAVES * LLM_CALLS * latency


def crew_yaml(base_url: str, notes: str, waves: int = WAVES, width: int = WIDTH, model: str = "bench") -> str:
    """The DAG as a crew on an openai-compatible provider at `base_url` (no key: a local server)."""
    lines = [f"runtime: {{name: peers, llm_provider: openai-compatible, model: {model}, base_url: {base_url!r}}}",
             "task: {input: List the notes.}",
             f"tools: [{{name: list_files, base_dir: {notes!r}}}]",
             "agents:"]
    for wave in range(waves):
        for i in range(width):
            lines += [f"  - id: {agent_id(wave, i)}", f"    goal: step {wave}.{i}", f"    depends_on: {parents(wave, width)}",
                      "    tools: [list_files]"]
    return "\n".join(lines) + "\n"
