"""The client API: submit a crew, read a run's status and events, wait for it, cancel it.

    from crewq.scheduler.runs import Client
    client = Client.from_env()               # CREWQ_REDIS_URL
    run_id = client.submit("crew.yaml", inputs={"topic": "tides"})
    result = client.wait(run_id, timeout=600)  # follows the run's event stream
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from celery import Celery

from crewq.config.errors import RunError
from crewq.config.loader import LoadedCrew, load_crew_text
from crewq.config.settings import Settings

from crewq.workers import tracing
from crewq.workers.app import create_app, ledger_of, settings_of
from crewq.workers.ledger import TERMINAL
from crewq.workers.runspec import RunSpec

from . import submission
from .emit import emit_wave
from .validate import check, check_loaded, render_task


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def submit_loaded(app: Celery, loaded: LoadedCrew, inputs: dict[str, str] | None = None,
                  task: str | None = None, run_id: str | None = None) -> str:
    """Store the crew by value under a new run id and emit its first wave. Returns the run id."""
    limits = settings_of(app).policy.limits
    inputs = submission.check_inputs(inputs, task, limits)
    waves = check_loaded(loaded)
    rendered = submission.check_task(render_task(loaded, inputs, task), limits)
    spec = RunSpec(run_id=run_id or new_run_id(), crew=loaded.crew, task=rendered,
                   waves=waves, source_file=str(Path(loaded.file).resolve()) if loaded.file != "<crew>" else None,
                   source_dir=loaded.source_dir if loaded.file != "<crew>" else None,
                   inputs=inputs, submitted_at=time.time())
    ledger = ledger_of(app)
    ledger.create_run(spec)
    ledger.set_run(spec.run_id, status="running", started_at=time.time(), **tracing.submit_fields(spec.run_id))
    ledger.event(spec.run_id, "run_started", agents=[a.id for a in spec.crew.agents])
    emit_wave(app, spec, 0)
    return spec.run_id


class Client:
    def __init__(self, app: Celery):
        self.app = app
        self.ledger = ledger_of(app)

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> "Client":
        return cls(create_app(settings))

    def submit(self, crew: str | Path, inputs: dict[str, str] | None = None, task: str | None = None) -> str:
        """Submit a crew file (a path) or crew YAML text."""
        limits = settings_of(self.app).policy.limits
        if isinstance(crew, Path) or (isinstance(crew, str) and "\n" not in crew and Path(crew).is_file()):
            loaded, _ = check(crew, limits)
        else:
            loaded = load_crew_text(submission.check_crew_text(crew), limits=limits)
        return submit_loaded(self.app, loaded, inputs, task)

    def status(self, run_id: str) -> dict[str, Any]:
        run = self.ledger.run(run_id)
        if not run:
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        spec = self.ledger.spec(run_id)
        agents = self.ledger.agents(run_id, [a.id for a in spec.crew.agents])
        return {"run_id": run_id, **run, "agents": agents}

    def events(self, run_id: str, follow: bool = False, after: str = "0-0",
               timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The run's events; with `follow`, new ones as they come until the run finishes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            block = 1000 if follow else None
            batch = self.ledger.events(run_id, after=after, block_ms=block)
            for event in batch:
                after = event["id"]
                yield event
                if follow and event["type"] == "run_finished" and self.ledger.run_status(run_id) in TERMINAL:
                    return  # (a resumed run has an earlier run_finished; it goes on)
            if not follow:
                return
            if not batch and self.ledger.run_status(run_id) in TERMINAL:
                return  # finished before we started following, and we have read everything
            if deadline is not None and time.monotonic() > deadline:
                return

    def wait(self, run_id: str, timeout: float | None = None,
             on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Follow the run to its end; returns its status. Raises RunError unless it succeeded."""
        for event in self.events(run_id, follow=True, timeout=timeout):
            if on_event:
                on_event(event)
        status = self.status(run_id)
        if status.get("status") not in TERMINAL:
            raise RunError(f"still {status.get('status')} after {timeout:g}s", run_id=run_id, status="timed out")
        if status["status"] != "succeeded":
            raise RunError(status.get("error") or status["status"], run_id=run_id, status=status["status"])
        return status

    def cancel(self, run_id: str, reason: str = "cancelled by the user") -> bool:
        """Mark the run cancelled and revoke the tasks workers hold; turns still queued see the status
        and stop. False if the run had ended already."""
        from .supervisor.repair import revoke_run
        if not self.ledger.has_run(run_id):
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        cancelled = self.ledger.finish_run(run_id, "cancelled", error=reason)
        if cancelled:
            revoke_run(self.app, self.ledger, run_id)
        return cancelled

    def resume(self, run_id: str) -> list[str]:
        """Continue a failed or cancelled run from the agents that completed. Returns the agents re-run."""
        if not self.ledger.has_run(run_id):
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        status = self.ledger.run_status(run_id)
        if status not in ("failed", "cancelled"):
            raise RunError(f"only a failed or cancelled run can be resumed", run_id=run_id, status=status or "?")
        spec = self.ledger.spec(run_id)
        states = self.ledger.agents(run_id, [a.id for a in spec.crew.agents])
        again = [a for wave in spec.waves for a in wave if states[a].get("status") != "succeeded"]
        if not again:
            raise RunError("every agent has succeeded already", run_id=run_id, status=status)
        for agent_id in again:
            self.ledger.reset_agent(run_id, agent_id, int(states[agent_id].get("attempt") or 0) + 1)
            self.ledger.update_agent(run_id, agent_id, restart_times=[])
        first = next(n for n, wave in enumerate(spec.waves) if any(a in again for a in wave))
        self.ledger.forget_waves(run_id, first, len(spec.waves))
        self.ledger.reopen_run(run_id)
        self.ledger.event(run_id, "run_resumed", agents=again, wave=first)
        emit_wave(self.app, spec, first, agents=[a for a in spec.waves[first] if a in again])
        return again


def run(crew: str | Path, inputs: dict[str, str] | None = None, *, task: str | None = None,
        timeout: float | None = None) -> dict[str, Any]:
    """Run a crew file to its end, for scripts and notebooks: on the fleet when CREWQ_REDIS_URL is
    set, else on the embedded default (a private Redis, an in-process worker and supervisor).
    Returns the run's summary (`crewq run --json`'s shape); raises RunError unless it succeeded."""
    from .commands import run as run_command
    summary = run_command(str(crew), dict(inputs or {}), task, timeout, concurrency=16, quiet=True)
    if summary["status"] != "succeeded":
        raise RunError(summary.get("error") or summary["status"], run_id=summary["run_id"], status=summary["status"])
    return summary
