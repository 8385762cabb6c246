"""Small helpers the tests share: write a crew file, run it to its end through the client API, read a
subprocess's stderr line by line."""

from __future__ import annotations

import queue
import subprocess
import textwrap
import threading
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


class Lines:
    """A subprocess's stderr, line by line, read in a thread: `wait_for` blocks on the next lines."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.seen, self.lines = proc, [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} within {timeout}s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"exited before a line with {text!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 60) -> str:
        self.proc.wait(timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return "".join(self.seen)
