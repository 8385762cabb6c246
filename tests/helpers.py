"""Small helpers the tests share: write a crew file, run it to its end through the client API."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from crewq.config.loader import load_crew
from crewq.scheduler.runs import Client, submit_loaded
from crewq.workers.ledger.state import RunState


def write_crew(folder: Path, text: str, name: str = "crew.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run_crew(app, path: Path, inputs: dict | None = None, timeout: float = 60) -> RunState:
    """Submit and follow the run's event stream to its end; returns the final status."""
    return follow(app, submit_loaded(app, load_crew(path), inputs or {}), timeout)


def follow(app, run_id: str, timeout: float = 60) -> RunState:
    """Follow a run's event stream to its end; returns the final status."""
    client = Client(app)
    for _ in client.events(run_id, follow=True, timeout=timeout):
        pass
    return client.status(run_id)


def stored_result(app, task_id: str, timeout: float = 30):
    """A task's result from the backend (crewq's backend has no `.get()` subscription)."""
    deadline = time.monotonic() + timeout
    while (meta := app.backend.get_task_meta(task_id))["status"] != "SUCCESS":
        assert time.monotonic() < deadline, meta
        time.sleep(0.05)
    return meta["result"]
