"""How counts read in messages: "1 agent in 1 wave", "3 agents in 2 waves"."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"
