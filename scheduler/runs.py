"""The client API: submit a crew, list runs, read a run's status and events, wait for it, cancel it.

    from crewq import Client
    client = Client.from_env()               # CREWQ_REDIS_URL
    run_id = client.submit("crew.yaml", inputs={"topic": "tides"})
    result = client.wait(run_id, timeout=600)  # a RunState; follows the run's event stream
    print(result.output, result.usage.input_tokens)

What it returns is typed (crewq.workers.ledger.state and .events): `status --json`, `run --json`
and `events --json` print those models as JSON.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

from crewq.config.errors import RunError
from crewq.config.loader import LoadedCrew, load_crew_text
from crewq.config.settings import Settings
from crewq.config.states import AgentStatus, RunStatus
from crewq.workers import tracing
from crewq.workers.agent_breaker import breakers_of
from crewq.workers.app import CrewqApp, create_app
from crewq.workers.ledger import TERMINAL
from crewq.workers.ledger.events import Event, RunFinished, parse
from crewq.workers.ledger.state import HeldTask, RunInfo, RunState, WorkerInfo
from crewq.workers.llm.limits import FleetLimits, fleet_limits
from crewq.workers.refs import ref_of
from crewq.workers.runspec import RunSpec

from . import serving, submission
from .emit import emit_wave
from .validate import check, check_loaded, render_task


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def submit_loaded(app: CrewqApp, loaded: LoadedCrew, inputs: dict[str, str] | None = None,
                  task: str | None = None, run_id: str | None = None) -> str:
    """Store the crew by value under a new run id and emit its first wave. Returns the run id."""
    limits = app.settings.policy.limits
    inputs = submission.check_inputs(inputs, task, limits)
    waves = check_loaded(loaded)
    rendered = render_task(loaded, inputs, task, limits)
    spec = RunSpec(run_id=run_id or new_run_id(), crew=loaded.crew, task=rendered,
                   waves=waves, source_file=str(Path(loaded.file).resolve()) if loaded.from_file else None,
                   source_dir=loaded.source_dir,
                   inputs=inputs, submitted_at=time.time())
    ledger = app.ledger
    ledger.create_run(spec)
    ledger.set_run(spec.run_id, status=RunStatus.RUNNING, started_at=time.time(), **tracing.submit_fields(spec.run_id))
    ledger.event(spec.run_id, "run_started", agents=[a.id for a in spec.crew.agents])
    emit_wave(app, spec, 0)
    return spec.run_id


class Client:
    def __init__(self, app: CrewqApp):
        self.app = app
        self.ledger = app.ledger

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> "Client":
        return cls(create_app(settings))

    @property
    def limits(self) -> FleetLimits:
        """The fleet's LLM limits: `.set("openai/gpt-4o", rpm=60, concurrency=4)`, `.clear(scope)`,
        `.all()`, `.usage()` (each limit with its current use)."""
        return fleet_limits(self.ledger.redis, self.ledger.keys.prefix)

    def submit(self, crew: str | Path, inputs: dict[str, str] | None = None, task: str | None = None) -> str:
        """Submit a crew file (a path) or crew YAML text."""
        limits = self.app.settings.policy.limits
        if isinstance(crew, Path) or (isinstance(crew, str) and "\n" not in crew and Path(crew).is_file()):
            loaded, _ = check(crew, limits=limits)
        else:
            loaded = load_crew_text(submission.check_crew_text(crew), limits=limits)
        return submit_loaded(self.app, loaded, inputs, task)

    def workers(self) -> list[WorkerInfo]:
        """The live workers (fresh heartbeats), each with the queues it consumes and what it holds."""
        held: dict[str, list[HeldTask]] = {}
        for task_id, record in self.ledger.held().items():
            ref = ref_of(record["name"], record["args"])
            held.setdefault(record["host"], []).append(HeldTask(
                task_id=task_id, task=record["name"], what=ref.describe() if ref else record["name"],
                run_id=ref.run_id if ref else None, agent_id=ref.agent_id if ref else None,
                since=record.get("since")))
        return [WorkerInfo(host=host, queues=record.get("queues"), last_beat=record.get("at"),
                           held=sorted(held.get(host, []), key=lambda t: t.since or 0))
                for host, record in sorted(self.ledger.live_workers().items())]

    def unserved(self, run_id: str) -> list[str]:
        """Why the run may wait in silence: a line per queue its unfinished agents need that no live
        worker serves, or one line for a fleet with no live worker at all (none: nothing to say)."""
        if not self.ledger.has_run(run_id):
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        return serving.run_gaps(self.ledger, self.ledger.spec(run_id), self.app.settings.queues)

    def runs(self, limit: int = 20) -> list[RunInfo]:
        """The most recent runs, newest first (those within the retention)."""
        return [RunInfo.model_validate(fields) for fields in self.ledger.run_infos(limit)]

    def status(self, run_id: str) -> RunState:
        run = self.ledger.run(run_id)
        if not run:
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        spec = self.ledger.spec(run_id)
        agents = self.ledger.agents(run_id, [a.id for a in spec.crew.agents])
        task = spec.crew.task
        budgets = {k: v for k, v in (("max_tokens", task.max_tokens), ("max_cost", task.max_cost)) if v}
        breakers = breakers_of(self.ledger.redis, self.ledger.keys, spec.crew)
        return RunState.from_ledger(run_id, run, agents, budgets=budgets, breakers=breakers)

    def events(self, run_id: str, follow: bool = False, after: str = "0-0",
               timeout: float | None = None, on_idle: Callable[[], None] | None = None) -> Iterator[Event]:
        """The run's events, each as the model of its type (crewq.workers.ledger.events); with
        `follow`, new ones as they come until the run finishes (`on_idle` is called between reads,
        at least every second)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            block = 1000 if follow else None
            if on_idle is not None:
                on_idle()
            batch = self.ledger.events(run_id, after=after, block_ms=block)
            for record in batch:
                event = parse(record)
                after = event.id
                yield event
                if follow and isinstance(event, RunFinished) and self.ledger.run_status(run_id) in TERMINAL:
                    return  # (a resumed run has an earlier run_finished; it goes on)
            if not follow:
                return
            if not batch and self.ledger.run_status(run_id) in TERMINAL:
                return  # finished before we started following, and we have read everything
            if deadline is not None and time.monotonic() > deadline:
                return

    def wait(self, run_id: str, timeout: float | None = None, on_event: Callable[[Event], None] | None = None,
             on_idle: Callable[[], None] | None = None) -> RunState:
        """Follow the run to its end; returns its status. Raises RunError unless it succeeded."""
        for event in self.events(run_id, follow=True, timeout=timeout, on_idle=on_idle):
            if on_event:
                on_event(event)
        status = self.status(run_id)
        if not status.status.terminal:
            raise RunError(f"still {status.status} after {timeout:g}s", run_id=run_id, status="timed out")
        if status.status != RunStatus.SUCCEEDED:
            raise RunError(status.error or status.status, run_id=run_id, status=status.status)
        return status

    def cancel(self, run_id: str, reason: str = "cancelled by the user") -> bool:
        """Mark the run cancelled and revoke the tasks workers hold; turns still queued see the status
        and stop. False if the run had ended already."""
        from .supervisor.repair import revoke_run
        if not self.ledger.has_run(run_id):
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        cancelled = self.ledger.finish_run(run_id, RunStatus.CANCELLED, error=reason)
        if cancelled:
            revoke_run(self.app, self.ledger, run_id)
            # Agents that had not started never will: say so (a running one ends cancelled when its call
            # returns; a standby nobody handed work to stays as it was).
            ids = [a.id for a in self.ledger.spec(run_id).crew.scheduled()]
            for agent_id, state in self.ledger.agents(run_id, ids).items():
                if state.get("status") == AgentStatus.WAITING:
                    self.ledger.update_agent(run_id, agent_id, status=AgentStatus.CANCELLED)
        return cancelled

    def resume(self, run_id: str) -> list[str]:
        """Continue a failed or cancelled run from the agents that completed. Returns the agents re-run."""
        if not self.ledger.has_run(run_id):
            raise LookupError(f"run {run_id} not found (unknown, or expired)")
        status = self.ledger.run_status(run_id)
        if status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise RunError("only a failed or cancelled run can be resumed", run_id=run_id, status=status or "?")
        spec = self.ledger.spec(run_id)
        states = self.ledger.agents(run_id, [a.id for a in spec.crew.agents])
        again = [a for wave in spec.waves for a in wave if states[a].get("status") != AgentStatus.SUCCEEDED]
        if not again:
            raise RunError("every agent has succeeded already", run_id=run_id, status=status)
        for agent_id in again:
            attempt = int(states[agent_id].get("attempt") or 0) + 1
            self.ledger.reset_agent(run_id, agent_id, attempt)
            # A resume gives the agent its budget again: max_attempts counts from here (attempt numbers
            # keep rising, so a stale task of an earlier attempt still sees that it is stale). The
            # agent breaker is asked anew (probe).
            self.ledger.update_agent(run_id, agent_id, restart_times=[], first_attempt=attempt, probe=None)
        first = next(n for n, wave in enumerate(spec.waves) if any(a in again for a in wave))
        self.ledger.forget_waves(run_id, first, len(spec.waves))
        self.ledger.reopen_run(run_id)
        self.ledger.event(run_id, "run_resumed", agents=again, wave=first)
        emit_wave(self.app, spec, first, agents=[a for a in spec.waves[first] if a in again])
        return again


def run(crew: str | Path, inputs: dict[str, str] | None = None, *, task: str | None = None,
        timeout: float | None = None) -> RunState:
    """Run a crew file to its end, for scripts and notebooks: on the fleet when CREWQ_REDIS_URL is
    set, else on the embedded default (a private Redis, an in-process worker and supervisor).
    Returns the run's final state (`crewq run --json`'s shape); raises RunError unless it succeeded."""
    from .commands import run as run_command
    state = run_command(str(crew), dict(inputs or {}), task, timeout, concurrency=16, quiet=True)
    if state.status != RunStatus.SUCCEEDED:
        raise RunError(state.error or state.status, run_id=state.run_id, status=state.status)
    return state
