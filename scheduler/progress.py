"""Progress of a run, from its events: a state model per agent (`RunView`) and the plain printer.

`RunView.apply(event)` updates each agent's state (waiting, running, tools, retrying, done,
failed, skipped), turn, tool calls in flight, tokens, cost and times, and returns the lines worth
a log: what changed, each failure once with the supervisor's decision after it. The plain printer
prints those lines (they read well in CI logs too); `live.py` draws the same model as a table.
Times are counted from when the command started, not from when the run did.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from crewq.config.words import plural

DETAIL_CHARS = 160  # -v: tool arguments and results, cut to this


@dataclass
class AgentView:
    id: str
    wave: int
    state: str = "waiting"
    turn: int = 0  # 1-based once running
    attempt: int = 0
    host: str = ""
    tools: dict[int, str] = field(default_factory=dict)  # index → name: asked for, no result yet
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    started: float | None = None  # event times (epoch seconds)
    finished: float | None = None
    errors: list[str] = field(default_factory=list)  # one per failed attempt
    retried: list[str] = field(default_factory=list)  # transient errors retried, each shown once

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished or now) - self.started

    def cost_text(self) -> str:
        if self.unpriced_calls:
            return f"≥${self.cost_usd:.4f}" if self.cost_usd else "unknown"
        return f"${self.cost_usd:.4f}"


Line = tuple[str | None, str]  # (agent, or None for the run; text)


class RunView:
    def __init__(self, name: str, waves: list[list[str]], started: float | None = None):
        self.name = name
        self.waves = waves
        self.agents = {a: AgentView(a, n) for n, wave in enumerate(waves) for a in wave}
        self.started = started if started is not None else time.time()
        self.wave: int | None = None
        self.status = "starting"
        self.error: str | None = None
        self.reported: list[str] = []  # failure texts already shown: the run's error does not repeat them

    def header(self) -> str:
        return f"{self.name}: {plural(len(self.agents), 'agent')} in {plural(len(self.waves), 'wave')}"

    def apply(self, event: dict[str, Any]) -> list[Line]:
        kind, agent_id = event["type"], event.get("agent")
        agent = self.agents.get(agent_id) if agent_id else None
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None or (agent_id and agent is None):
            return []
        return handler(event, agent) if agent_id else handler(event)

    # -- the run ---------------------------------------------------------------------------------

    def _on_run_started(self, event) -> list[Line]:
        self.status = "running"
        return []

    def _on_wave_emitted(self, event) -> list[Line]:
        self.wave = event["wave"]
        return [(None, f"wave {event['wave']}: {', '.join(event['agents'])}")]

    def _on_run_resumed(self, event) -> list[Line]:
        self.status = "running"
        return [(None, f"resumed from wave {event['wave']}: {', '.join(event['agents'])}")]

    def _on_run_finished(self, event) -> list[Line]:
        self.status, self.error = event["status"], event.get("error") or None
        if not self.error:
            return [(None, self.status)]
        error = self.error
        for shown in self.reported:  # "agent a failed after 2 attempts: <the error shown above>"
            if shown and error.endswith(shown) and len(error) > len(shown):
                error = error[: -len(shown)].rstrip(": ") + " (error above)"
                break
        return [(None, f"{self.status}: {error}")]

    # -- an agent --------------------------------------------------------------------------------

    def _on_turn_started(self, event, agent: AgentView) -> list[Line]:
        agent.state, agent.turn, agent.host = "running", event["turn"] + 1, event.get("host") or ""
        agent.attempt, agent.finished = int(event.get("attempt") or 0), None
        agent.started = agent.started or event["ts"]
        again = [f"attempt {agent.attempt + 1}"] if agent.attempt and event["turn"] == 0 else []
        again += [f"retry {event['retries']}"] if event.get("retries") else []
        return [(agent.id, f"running  turn {agent.turn} on {agent.host}" + "".join(f", {x}" for x in again))]

    def _on_llm_call(self, event, agent: AgentView) -> list[Line]:
        agent.input_tokens += int(event.get("input_tokens") or 0)
        agent.output_tokens += int(event.get("output_tokens") or 0)
        if event.get("cost_usd") is None:
            agent.unpriced_calls += 1
        else:
            agent.cost_usd += float(event["cost_usd"])
        calls = event.get("tool_calls") or []
        if not calls:
            return []
        agent.state, agent.tools = "tools", dict(enumerate(calls))
        return [(agent.id, f"tool calls: {', '.join(calls)}")]

    def _on_llm_retry(self, event, agent: AgentView) -> list[Line]:
        agent.state = "retrying"
        error = "the same error" if event["error"] in agent.retried else event["error"]
        agent.retried.append(event["error"])
        return [(agent.id, f"LLM retry in {event['countdown']:.1f}s: {error}")]

    def _on_llm_throttled(self, event, agent: AgentView) -> list[Line]:
        agent.state = "throttled"
        return [(agent.id, f"waits {event['seconds']:.1f}s for the fleet's {event['limit']} limit of {event['scope']}")]

    def _on_tool_result(self, event, agent: AgentView) -> list[Line]:
        agent.tools.pop(event["index"], None)
        if not agent.tools and agent.state == "tools":
            agent.state = "running"
        return [(agent.id, f"tool {event['name']} returned an error")] if event.get("is_error") else []

    def _on_tool_skipped(self, event, agent: AgentView) -> list[Line]:
        agent.tools.pop(event["index"], None)
        return [(agent.id, f"tool {event['name']} skipped: {event['reason']}")]

    def _on_agent_succeeded(self, event, agent: AgentView) -> list[Line]:
        agent.state, agent.finished, agent.tools = "done", event["ts"], {}
        lines: list[Line] = [(agent.id, f"done     after {plural(event['turns'], 'turn')}, "
                                        f"{agent.input_tokens}/{agent.output_tokens} tokens, {agent.cost_text()}")]
        root = self.agents.get(event.get("stands_for") or "")
        if root is not None:  # a fallback's output stands for the agent it replaced
            root.state, root.finished = f"done by {agent.id}", event["ts"]
            lines.append((root.id, f"done     by its fallback {agent.id}"))
        return lines

    def _on_handed_over(self, event, agent: AgentView) -> list[Line]:
        fallback, root = event["fallback"], event["stands_for"]
        wave = self.agents[root].wave if root in self.agents else agent.wave
        self.agents.setdefault(fallback, AgentView(fallback, wave))  # a standby: in no wave of its own
        agent.state = "handed over"
        instead = "" if root == agent.id else f", in place of {root}"
        return [(agent.id, f"supervisor: hand over to {fallback}{instead} ({event.get('reason', '')})")]

    def _on_agent_failed(self, event, agent: AgentView) -> list[Line]:
        agent.state, agent.finished, agent.tools = "failed", event["ts"], {}
        error = event["error"]
        text = f"FAILED   attempt {int(event.get('attempt') or 0) + 1}: "
        if error in agent.errors:
            text += f"the same error as attempt {agent.errors.index(error) + 1}"
        elif any(error.startswith(retried) for retried in agent.retried):  # "<it> (after 3 tries)"
            text += "the error retried above" + error[len(next(r for r in agent.retried if error.startswith(r))):]
        else:
            text += error
        agent.errors.append(error)
        self.reported.append(error)
        return [(agent.id, text)]

    def _on_decision(self, event, agent: AgentView) -> list[Line]:
        action = event.get("action")
        if action == "restart":
            agent.state = "restarting"
        return [(agent.id, f"supervisor: {str(action).replace('_', ' ')} ({event.get('reason', '')})")]

    def _on_agent_skipped(self, event, agent: AgentView) -> list[Line]:
        agent.state = "skipped"
        return [(agent.id, f"skipped  ({event['because']} failed)")]

    def _on_requeued(self, event, agent: AgentView) -> list[Line]:
        return [(agent.id, f"requeued: {event.get('what', '')}")]


class ToolDetails:
    """-v: a tool call's arguments and its result, read from the ledger (events carry neither)."""

    def __init__(self, ledger, run_id: str, view: RunView):
        self.ledger, self.run_id, self.view = ledger, run_id, view

    def __call__(self, event: dict[str, Any]) -> list[Line]:
        kind, agent_id = event["type"], event.get("agent")
        if kind not in ("tool_call", "tool_result") or agent_id not in self.view.agents:
            return []
        attempt = self.view.agents[agent_id].attempt
        result, reply = self.ledger.tool_call_state(self.run_id, agent_id, attempt, event["turn"], event["index"])
        if kind == "tool_call":
            calls = (reply or {}).get("tool_calls") or []
            arguments = calls[event["index"]].get("arguments") if event["index"] < len(calls) else None
            return [(agent_id, f"→ {event['name']} {cut(json.dumps(arguments, ensure_ascii=False))}")]
        content = str((result or {}).get("content", ""))
        error = "error: " if (result or {}).get("is_error") else ""
        return [(agent_id, f"← {event['name']} {error}{cut(content)}")]


def cut(text: str, limit: int = DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + f"… ({len(text)} chars)"


class Progress:
    """The plain printer: one line whenever something changes."""

    def __init__(self, view: RunView, out: TextIO | None = None,
                 details: Callable[[dict[str, Any]], list[Line]] | None = None):
        self.view, self.details = view, details
        self.out = out or sys.stderr
        self.width = max([len(a) for a in view.agents] + [3])
        for agent in view.agents.values():
            self._line(agent.id, f"waiting  (wave {agent.wave})")

    def _line(self, agent: str | None, text: str, ts: float | None = None) -> None:
        stamp = f"{(ts or time.time()) - self.view.started:6.1f}s"
        print(f"{stamp}  {(agent or 'run').ljust(self.width)}  {text}", file=self.out, flush=True)

    def __call__(self, event: dict[str, Any]) -> None:
        lines = self.view.apply(event) + (self.details(event) if self.details else [])
        for agent, text in lines:
            self._line(agent, text, event.get("ts"))

    def note(self, text: str) -> None:
        """A line about the run from outside its events (`crewq run`: no worker serves a queue)."""
        self._line(None, text)

    def close(self) -> None:
        pass


class HeldLogs(logging.Handler):
    """Log records (WARNING and above) held while the progress is on screen, so Celery's and the
    worker's own lines do not break into it; printed once after, each distinct line once."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.held: Counter[str] = Counter()
        self._saved: list[logging.Handler] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "crewq.supervisor" and record.levelno < logging.ERROR:
            return  # the embedded supervisor's decisions are events: the view has shown them
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.held[text] += 1

    def __enter__(self) -> "HeldLogs":
        root = logging.getLogger()
        self._saved, root.handlers = root.handlers[:], [self]
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().handlers = self._saved

    def flush_to(self, out: TextIO) -> None:
        if not self.held:
            return
        print(f"log during the run ({plural(sum(self.held.values()), 'line')}, WARNING and above):", file=out)
        for text, count in self.held.items():
            print(f"  {text}" + (f"  (×{count})" if count > 1 else ""), file=out)
        self.held.clear()


@dataclass
class Watch:
    """How `crewq run` shows a run: live on a terminal unless `plain`, tool details with `verbose`,
    times from `started` (when the command started). `shown_error` is the run's error as the view
    showed it, so the closing line need not repeat it."""
    plain: bool = False
    verbose: bool = False
    started: float = field(default_factory=time.time)
    shown_error: str | None = None

    def start(self, name: str, waves: list[list[str]], ledger, run_id: str, out: TextIO | None = None):
        view = RunView(name, waves, started=self.started)
        details = ToolDetails(ledger, run_id, view) if self.verbose else None
        out = out or sys.stderr
        if not self.plain and out.isatty() and os.environ.get("TERM") != "dumb":
            from rich.console import Console

            from .live import LiveProgress
            return LiveProgress(view, console=Console(file=out), details=details)
        return Progress(view, out, details)
