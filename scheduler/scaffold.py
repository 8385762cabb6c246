"""`crewq init`: a starter crew for one provider, its `.env.example`, and the next steps to run it.

The crew runs as its own comment says: its task has no {placeholder} left to fill, and every
setting a provider needs is written out, so the only thing to set is the variable the next steps
name. A starter on a provider's public API runs on a fleet's default policy too: its only `env:`
reference is the key, which the default binds to that API. Its base_url is written out, not an
`env:X_BASE_URL:-...` reference: the default policy refuses a variable it does not list (set or
not), and on a fleet the key goes only where the policy binds it anyway, so the variable bought
nothing. (A local Ollama or a server of your own is a private address: a fleet needs the operator's
allow_private_addresses for those, whatever the crew says.)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Iterator

TEMPLATES = Path(__file__).resolve().parent.parent / "config" / "templates"


@dataclass(frozen=True)
class Starter:
    runtime: str  # the runtime: lines after `name:`
    env: str  # the provider's part of .env.example
    to_set: tuple[str, ...] = ()  # variables the user must set before running
    before: tuple[str, ...] = ()  # commands to run first (outside crewq)
    comment: str = ""


STARTERS: dict[str, Starter] = {
    "scripted": Starter(
        comment="# `scripted` plays each agent's `script:` replies: offline and free. For a real model:\n"
                "#   crewq init DIR --provider anthropic|openai|gemini|ollama|openai-compatible\n",
        runtime="  llm_provider: scripted\n",
        env="# The scripted provider needs no key.\n"),
    "anthropic": Starter(
        runtime="  llm_provider: anthropic\n"
                "  model: claude-sonnet-4-5\n"
                "  api_key: env:ANTHROPIC_API_KEY\n"
                "  # The API root, without /v1. Another (a gateway) needs, on a fleet, its key's binding in the policy.\n"
                "  base_url: https://api.anthropic.com\n",
        env="ANTHROPIC_API_KEY=\n",
        to_set=("ANTHROPIC_API_KEY",)),
    "openai": Starter(
        runtime="  llm_provider: openai\n"
                "  model: gpt-4o-mini\n"
                "  api_key: env:OPENAI_API_KEY\n"
                "  # The API root, with /v1: requests go to {base_url}/chat/completions. Another (a gateway)\n"
                "  # needs, on a fleet, its key's binding in the policy.\n"
                "  base_url: https://api.openai.com/v1\n",
        env="OPENAI_API_KEY=\n",
        to_set=("OPENAI_API_KEY",)),
    "gemini": Starter(
        runtime="  llm_provider: gemini\n"
                "  model: gemini-2.5-flash\n"
                "  api_key: env:GEMINI_API_KEY\n"
                "  base_url: https://generativelanguage.googleapis.com\n",
        env="GEMINI_API_KEY=\n",
        to_set=("GEMINI_API_KEY",)),
    "ollama": Starter(
        runtime="  llm_provider: ollama\n"
                "  model: llama3.1\n"
                "  # Ollama's address; its native API (/api/chat), so no /v1. A fleet reaches a local\n"
                "  # address only with allow_private_addresses: true in its policy.\n"
                "  base_url: http://localhost:11434\n",
        env="# Ollama needs no key.\n",
        before=("ollama pull llama3.1",)),
    "openai-compatible": Starter(
        comment="# `openai-compatible`: a server of your own that speaks OpenAI's chat completions\n"
                "# (vLLM, LM Studio, llama.cpp, LiteLLM); its address is required, it has no default.\n"
                "# On a fleet its policy must list LLM_* in env_vars, bind LLM_API_KEY in secrets and, for\n"
                "# a private address, set allow_private_addresses (or write the values here).\n",
        runtime="  llm_provider: openai-compatible\n"
                "  model: env:LLM_MODEL\n"
                "  api_key: env:LLM_API_KEY:-\n"
                "  # The server's root, with /v1: requests go to {base_url}/chat/completions.\n"
                "  base_url: env:LLM_BASE_URL\n",
        env="LLM_BASE_URL=http://localhost:8000/v1\n"
            "LLM_MODEL=\n"
            "# LLM_API_KEY=\n",
        to_set=("LLM_MODEL", "LLM_BASE_URL")),
}

RESEARCHER_SCRIPT = ('    script:                   # the replies `scripted` plays, in order\n'
                     '      - text: "Three facts about tides, with sources."\n')
WRITER_SCRIPT = ('    script:\n'
                 '      - text: "A short brief about tides, built from the researcher\'s facts."\n')



def crew_text(provider: str) -> str:
    starter = STARTERS[provider]
    scripted = provider == "scripted"
    return Template((TEMPLATES / "crew.yaml").read_text(encoding="utf-8")).substitute(
        provider=provider, comment=starter.comment, runtime=starter.runtime,
        researcher_script=RESEARCHER_SCRIPT if scripted else "",
        writer_script=WRITER_SCRIPT if scripted else "")


def env_text(provider: str) -> str:
    header = "# Copy to .env and fill in; the worker that needs a value reads it (runtime.env_file).\n"
    # (No CREWQ_REDIS_URL here: crewq reads the fleet's address from the environment, never from a crew's .env.)
    return header + STARTERS[provider].env


def files(provider: str) -> dict[str, str]:
    return {"crew.yaml": crew_text(provider), ".env.example": env_text(provider),
            ".gitignore": (TEMPLATES / "gitignore").read_text(encoding="utf-8")}


def init(directory: Path, provider: str) -> Iterator[str]:
    """Write the files that are not there yet (never overwriting), then the next steps."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files(provider).items():
        target = directory / name
        if target.exists():
            yield f"kept     {target} (exists)"
            continue
        target.write_text(text, encoding="utf-8")
        yield f"created  {target}"
    yield ""
    yield from next_steps(directory, provider)


def next_steps(directory: Path, provider: str) -> Iterator[str]:
    starter = STARTERS[provider]
    crew = shlex.quote(str(directory / "crew.yaml"))
    yield "next steps:"
    if starter.to_set:
        yield f"  cp {shlex.quote(str(directory / '.env.example'))} {shlex.quote(str(directory / '.env'))}"
        yield f"  # in {directory / '.env'}, set {' and '.join(starter.to_set)}"
    for command in starter.before:
        yield f"  {command}"
    yield f"  crewq validate {crew}"
    yield f"  crewq run {crew}"
