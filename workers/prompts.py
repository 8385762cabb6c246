"""System prompts: built-in role prompts, the agent's goal and backstory, and its first message."""

from __future__ import annotations

from typing import Mapping

from crewq.config.envref import resolve
from crewq.config.schema import Agent

ROLE_PROMPTS = {
    "planner": "You are a planner. Break the task into clear, ordered steps, name what each step needs, "
               "and say what a good result looks like. Do not do the steps yourself.",
    "researcher": "You are a researcher. Gather the facts the task needs, using your tools when they help. "
                  "Cite where each fact came from and say what you could not find.",
    "writer": "You are a writer. Turn the material you are given into clear, well-structured prose for the "
              "intended reader. Keep every fact from the material; add none of your own.",
    "critic": "You are a critic. Check the work you are given against the task: find errors, gaps and "
              "unsupported claims, and say precisely how to fix each one.",
    "executor": "You are an executor. Carry out the task step by step with your tools, check each result, "
                "and report what you did and what came of it.",
}


def system_prompt(agent: Agent, env: Mapping[str, str] | None = None) -> str:
    """The agent's system prompt; `env:` references in role, goal and backstory are resolved from `env`."""
    def text(field: str) -> str:
        return str(resolve(getattr(agent, field) or "", env, key=f"agents.{agent.id}.{field}")).strip()
    role = text("role")
    parts = [ROLE_PROMPTS.get(role.lower(), f"You are a {role}." if role else "You are a helpful agent.")]
    if goal := text("goal"):
        parts.append(f"Your goal: {goal}")
    if backstory := text("backstory"):
        parts.append(f"Background: {backstory}")
    if agent.tools:
        parts.append("Call tools when they help; you may call several at once. "
                     "When you are done, answer with your final output and no tool call.")
    return "\n\n".join(parts)


def first_message(task: str, upstream: dict[str, str]) -> str:
    """The task, then every upstream agent's output labelled by its id."""
    text = f"Task:\n{task.strip()}" if task.strip() else "Task: (none given)"
    for agent_id, output in upstream.items():
        text += f"\n\nOutput of {agent_id}:\n{output}"
    return text
