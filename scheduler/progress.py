"""Live progress per agent, from the run's events: waiting, running, turn n, tool calls, done, failed."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Prints one line whenever an agent's state changes. Plain lines: they read well in CI logs too."""

    def __init__(self, agents: list[str], out: TextIO | None = None):
        self.out = out or sys.stderr
        self.width = max((len(a) for a in agents), default=5)
        self.started = time.monotonic()
        for agent in agents:
            self._line(agent, "waiting")

    def _line(self, agent: str | None, text: str) -> None:
        stamp = f"{time.monotonic() - self.started:6.1f}s"
        label = (agent or "run").ljust(self.width)
        print(f"{stamp}  {label}  {text}", file=self.out, flush=True)

    def __call__(self, event: dict[str, Any]) -> None:
        kind, agent = event["type"], event.get("agent")
        if kind == "wave_emitted":
            self._line(None, f"wave {event['wave']}: {', '.join(event['agents'])}")
        elif kind == "turn_started":
            retry = f", retry {event['retries']}" if event.get("retries") else ""
            self._line(agent, f"running  turn {event['turn'] + 1} on {event.get('host')}{retry}")
        elif kind == "llm_call" and event.get("tool_calls"):
            self._line(agent, f"tool calls: {', '.join(event['tool_calls'])}")
        elif kind == "llm_throttled":
            self._line(agent, f"waits {event['seconds']:.1f}s for the fleet's {event['limit']} limit of {event['scope']}")
        elif kind == "llm_retry":
            self._line(agent, f"LLM retry in {event['countdown']:.1f}s: {event['error']}")
        elif kind == "tool_result" and event.get("is_error"):
            self._line(agent, f"tool {event['name']} returned an error")
        elif kind == "tool_skipped":
            self._line(agent, f"tool {event['name']} skipped: {event['reason']}")
        elif kind == "agent_succeeded":
            self._line(agent, f"done     after {event['turns']} turn{'s' if event['turns'] > 1 else ''}")
        elif kind == "agent_failed":
            self._line(agent, f"FAILED   {event['error']}")
        elif kind == "agent_skipped":
            self._line(agent, f"skipped  ({event['because']} failed)")
        elif kind == "decision":
            self._line(agent, f"supervisor: {event.get('action')} ({event.get('reason', '')})")
        elif kind == "run_finished":
            self._line(None, f"{event['status']}" + (f": {event['error']}" if event.get("error") else ""))
