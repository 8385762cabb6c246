"""Server-Sent Events, parsed from lines (the WHATWG rules MCP's streamable HTTP relies on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None  # the stream's last event id so far (priming events carry only this)


def events(lines: Iterable[str]) -> Iterator[Event]:
    data: list[str] = []
    name, last_id, pending = "", None, False
    for line in lines:
        if line == "":
            if pending:
                yield Event("\n".join(data), name or "message", last_id)
            data, name, pending = [], "", False
            continue
        if line.startswith(":"):
            continue  # a comment, often a keep-alive
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field != "retry":
            continue
        pending = True
    if pending and data:
        yield Event("\n".join(data), name or "message", last_id)
