"""The live view of a run on a terminal (rich): one line per agent, redrawn in place.

Each agent's wave, state, turn, tool calls in flight, tokens, cost and elapsed time; the run's
current wave in the title. The lines `RunView` finds worth a log (failures with their decisions,
tool details with -v) are printed above the table, so they stay in the scrollback.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, cast

from rich.console import Console, JustifyMethod
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .progress import Line, RunView

STYLES = {"waiting": "dim", "running": "cyan", "tools": "magenta", "retrying": "yellow", "restarting": "yellow",
          "done": "green", "failed": "bold red", "skipped": "dim strike", "handed over": "yellow"}
# Lines kept in the scrollback above the table; the rest (waves, turns, tools asked) the table shows.
NOTABLE = ("FAILED", "supervisor:", "skipped", "LLM retry", "tool ", "→", "←", "requeued")


def table(view: RunView, now: float | None = None) -> Table:
    """The view as a table; `now` (epoch seconds) for the running agents' elapsed times."""
    now = time.time() if now is None else now
    where = f"running wave {view.wave} (last: {len(view.waves) - 1})" if view.wave is not None else "starting"
    title = f"{view.header()}  ·  {view.status if view.status not in ('running', 'starting') else where}"
    grid = Table(title=title, title_justify="left", box=None, pad_edge=False, expand=False)
    for column, justify in (("wave", "right"), ("agent", "left"), ("state", "left"), ("turn", "right"),
                            ("tools in flight", "left"), ("tokens in/out", "right"), ("cost", "right"),
                            ("time", "right")):
        grid.add_column(column, justify=cast("JustifyMethod", justify), no_wrap=True)
    for agent in view.agents.values():
        in_flight = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in Counter(agent.tools.values()).items())
        elapsed = agent.elapsed(now)
        style = STYLES.get(agent.state, "green" if agent.state.startswith("done") else "")
        grid.add_row(str(agent.wave), agent.id, Text(agent.state, style=style),
                     str(agent.turn or ""), in_flight,
                     f"{agent.input_tokens}/{agent.output_tokens}" if agent.turn else "",
                     agent.cost_text() if agent.turn else "", f"{elapsed:.1f}s" if elapsed is not None else "")
    grid.caption, grid.caption_justify = f"{now - view.started:.1f}s since start", "left"
    return grid


class LiveProgress:
    """Feeds events to the view and redraws; a context manager around the run's follow loop."""

    def __init__(self, view: RunView, console: Console | None = None,
                 details: Callable[[dict[str, Any]], list[Line]] | None = None):
        self.view, self.details = view, details
        self.console = console or Console(stderr=True)
        self.live = Live(get_renderable=lambda: table(self.view), console=self.console, refresh_per_second=8,
                         transient=False, redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def __call__(self, event: dict[str, Any]) -> None:
        lines = self.view.apply(event) + (self.details(event) if self.details else [])
        for agent, text in lines:
            run_end = agent is None and event["type"] == "run_finished" and self.view.error
            if run_end or (agent and text.startswith(NOTABLE) and not text.startswith("tool calls:")):
                style = "red" if text.startswith("FAILED") else ("yellow" if "supervisor" in text else "")
                stamp = f"{event['ts'] - self.view.started:6.1f}s"
                self.console.print(Text(f"{stamp}  {agent or 'run'}  ", style="dim") + Text(text, style=style),
                                   highlight=False, soft_wrap=True)
        self.live.refresh()

    def note(self, text: str) -> None:
        """A line about the run from outside its events, kept in the scrollback."""
        stamp = f"{time.time() - self.view.started:6.1f}s"
        self.console.print(Text(f"{stamp}  run  ", style="dim") + Text(text, style="yellow"), highlight=False,
                           soft_wrap=True)
        self.live.refresh()

    def close(self) -> None:
        self.live.stop()
