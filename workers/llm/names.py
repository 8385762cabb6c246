"""Tool names as the provider APIs accept them.

crewq's tool names come from crew files and MCP servers. The MCP spec allows dots in tool names,
and a name clash gives an MCP tool the name `server_name.tool`; Anthropic's and OpenAI's APIs
accept only `^[a-zA-Z0-9_-]{1,64}$` (Gemini also wants a letter or `_` first) and refuse the whole
request otherwise. So each request says such a name in that alphabet (`.` becomes `__`, anything
else `_`, `_` in front of a leading digit or dash, cut to 64, made unique) and the
reply's tool calls are mapped back: the ledger, the events and the tools only see the real names.
"""

from __future__ import annotations

import re

from .types import LLMReply, LLMRequest

VALID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MAX = 64


class WireNames:
    def __init__(self, names: list[str]):
        self.to_wire: dict[str, str] = {}
        self.from_wire: dict[str, str] = {}
        taken = {n for n in names if VALID.match(n)}
        for name in names:
            wire = name if VALID.match(name) else self._fresh(name, taken)
            taken.add(wire)
            self.to_wire[name], self.from_wire[wire] = wire, name

    @staticmethod
    def _fresh(name: str, taken: set[str]) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", name.replace(".", "__"))
        base = (base if re.match(r"[A-Za-z_]", base) else "_" + base)[:MAX]
        wire, n = base, 2
        while wire in taken:
            suffix = f"_{n}"
            wire, n = base[:MAX - len(suffix)] + suffix, n + 1
        return wire

    @property
    def renamed(self) -> bool:
        return any(name != wire for name, wire in self.to_wire.items())

    def request(self, request: LLMRequest) -> LLMRequest:
        """The request with every tool name (definitions, earlier calls, results) as the wire says it."""
        if not self.renamed:
            return request
        wire = lambda name: self.to_wire.get(name, name)  # noqa: E731
        messages = [m.model_copy(update={
            "tool_calls": [c.model_copy(update={"name": wire(c.name)}) for c in m.tool_calls],
            "name": wire(m.name) if m.name else m.name}) for m in request.messages]
        tools = [t.model_copy(update={"name": wire(t.name)}) for t in request.tools]
        return request.model_copy(update={"messages": messages, "tools": tools})

    def reply(self, reply: LLMReply) -> LLMReply:
        """The reply with the tool calls named as crewq knows them."""
        if not self.renamed or not reply.tool_calls:
            return reply
        calls = [c.model_copy(update={"name": self.from_wire.get(c.name, c.name)}) for c in reply.tool_calls]
        return reply.model_copy(update={"tool_calls": calls})
