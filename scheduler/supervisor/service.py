"""The supervisor service: reads FailureReports, applies restart policies, requeues dead workers'
work, and enforces deadlines. One is active per fleet (`Leadership`); others stand by.

Reports are read from a Redis Stream with a consumer group and acknowledged only once handled, so
a report whose supervisor died mid-way is claimed again by the next active one. Handling is
idempotent: the decision on an attempt is recorded once (SET NX) and applying it twice is harmless.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from crewq.config.states import RunStatus
from crewq.workers import logs
from crewq.workers.agent_breaker import agent_breaker
from crewq.workers.app import CrewqApp
from crewq.workers.ledger import TERMINAL
from crewq.workers.runspec import RunSpec
from crewq.workers.turn import report_failure

from ..advance import fail_run
from ..serving import run_gaps
from . import repair, stall
from .leader import Leadership
from .policy import Decision, decide
from .redeliver import Redeliverer

log = logging.getLogger("crewq.supervisor")
GROUP = "supervisors"


class Supervisor:
    def __init__(self, app: CrewqApp, name: str | None = None, block_ms: int = 300):
        self.app = app
        self.block_ms = block_ms  # each read of the reports waits this long: how soon stop() is seen
        self.ledger = app.ledger
        self.settings = app.settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.leadership = Leadership(self.ledger.redis, self.ledger.keys.leader, self.settings.leader_ttl, self.name)
        self.stopped = threading.Event()
        self._last_sweep = 0.0
        self.redeliverer = Redeliverer(app, self.ledger, grace=self.settings.heartbeat_ttl)
        self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            self.ledger.redis.xgroup_create(self.ledger.keys.failures, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        log.info("supervisor %s starting", self.name)
        was_leader = False
        try:
            while not self.stopped.is_set():
                try:
                    leader = self.leadership.hold()
                    if leader and not was_leader:
                        log.info("supervisor %s is active", self.name)
                        self.claim_pending()
                    was_leader = leader
                    if not leader:
                        self.stopped.wait(min(0.5, self.settings.leader_ttl / 4))
                        continue
                    self.step(self.block_ms)
                except redis.ConnectionError as exc:
                    log.warning("supervisor %s: Redis unreachable (%s); retrying", self.name, exc)
                    was_leader = False
                    self.stopped.wait(1.0)
                except Exception:  # the backstop: one bad record or message must not stop the fleet's supervisor
                    log.exception("supervisor %s: a step failed; carrying on", self.name)
                    self.stopped.wait(1.0)
        finally:
            self.leadership.release()
            self.redeliverer.close()
            log.info("supervisor %s stopped", self.name)

    def stop(self) -> None:
        self.stopped.set()

    def step(self, block_ms: int = 300) -> None:
        found: Any = self.ledger.redis.xreadgroup(GROUP, self.name, {self.ledger.keys.failures: ">"},
                                             count=50, block=block_ms)
        for _, entries in found or []:
            for entry_id, fields in entries:
                self.handle_entry(entry_id, fields)
        if time.monotonic() - self._last_sweep >= self.settings.sweep_interval:
            self._last_sweep = time.monotonic()
            self.sweep()

    def claim_pending(self) -> None:
        """Take over reports that an earlier supervisor read but did not finish."""
        start = "0-0"
        while True:
            result = self.ledger.redis.xautoclaim(self.ledger.keys.failures, GROUP, self.name, min_idle_time=0,
                                                  start_id=start, count=100)
            start, entries = result[0], result[1]
            for entry_id, fields in entries:
                if fields:
                    log.info("supervisor %s: claimed pending report %s", self.name, entry_id)
                    self.handle_entry(entry_id, fields)
            if start == "0-0" or not entries:
                return

    def handle_entry(self, entry_id: str, fields: dict) -> None:
        try:
            self.handle(json.loads(fields["report"]))
        except Exception:
            log.exception("supervisor: report %s could not be handled", entry_id)
            return  # left pending: a later supervisor (or restart) claims it again
        self.ledger.redis.xack(self.ledger.keys.failures, GROUP, entry_id)

    # -- failures -------------------------------------------------------------------------------

    def handle(self, report: dict) -> Decision | None:
        ledger, run_id, agent_id, attempt = self.ledger, report["run_id"], report["agent_id"], report["attempt"]
        if not ledger.has_run(run_id) or ledger.run_status(run_id) in TERMINAL:
            return None
        spec = ledger.spec(run_id)
        state = ledger.agent(run_id, agent_id)
        if int(state.get("attempt") or 0) > attempt and not ledger.redis.exists(
                ledger.keys.decision(run_id, agent_id, attempt)):
            return None  # an older attempt, superseded by a restart that was not ours to apply
        now = time.time()
        states = ledger.agents(run_id, [a.id for a in spec.crew.agents])
        proposed = decide(spec, agent_id, attempt, states, ledger.run(run_id), repair.restart_times(state), now,
                          self.settings, permanent=bool(report.get("permanent")),
                          breaker_open=bool(report.get("breaker_open")))
        new, recorded = ledger.decision(run_id, agent_id, attempt, proposed.to_json())
        decision = Decision.from_json(recorded)
        if new:
            # The breaker counts runs the agent could not finish (restarts are the policy's business);
            # a refusal by the breaker itself is not one more failure.
            if decision.action == "give_up" and not report.get("breaker_open"):
                agent_breaker(ledger.redis, ledger.keys, spec.crew, spec.crew.agent(agent_id)).failure()
            if decision.action == "restart":
                times = repair.restart_times(state) + [now]
                ledger.update_agent(run_id, agent_id, restart_times=times)
                ledger.redis.hincrby(ledger.keys.run(run_id), "restarts", 1)
            ledger.event(run_id, "decision", agent_id, action=decision.action, policy=decision.policy,
                         failed_attempt=attempt, countdown=decision.countdown,
                         restarts=sorted(decision.targets) if decision.action == "restart" else [],
                         reason=decision.reason, error=report.get("error"))
            if decision.fallback:
                ledger.event(run_id, "handed_over", agent_id, fallback=decision.fallback,
                             stands_for=decision.stands_for, failed_attempt=attempt, reason=decision.reason)
            log_decision(decision, run_id, report.get("error"))
        if not ledger.decision_applied(run_id, agent_id, attempt):
            repair.apply(self.app, ledger, spec, decision)
            ledger.set_decision_applied(run_id, agent_id, attempt)
        return decision

    # -- the sweep: dead workers and deadlines ---------------------------------------------------

    def sweep(self) -> None:
        # Each on its own: one that fails on something malformed must not stop the others (deadlines, say).
        for step in (self.requeue_from_dead_workers, self.enforce_deadlines, self.restart_stalled_runs):
            try:
                step()
            except redis.ConnectionError:
                raise
            except Exception:
                log.exception("supervisor %s: %s failed; carrying on", self.name, step.__name__)

    def requeue_from_dead_workers(self) -> list[str]:
        """Give back to their queues the messages that dead workers had taken (see `redeliver`)."""
        return [orphan.describe() for orphan in self.redeliverer.sweep(time.time())]

    def restart_stalled_runs(self) -> list[str]:
        """Runs quiet for `stall_after` with nothing in flight get their next step again (see `stall`)."""
        now = time.time()
        sent: list[str] = []
        last = self.ledger.last_events_at(list(self.ledger.active_runs()))
        quiet = [run_id for run_id, at in last.items() if at is not None and now - at > self.settings.stall_after
                 and self.ledger.has_run(run_id) and self.ledger.run_status(run_id) not in TERMINAL]
        if not quiet:
            return sent
        held = self.ledger.held()
        alive = self.ledger.alive({record["host"] for record in held.values()})
        specs = [spec for spec in map(self._spec, quiet) if spec is not None]
        messages = stall.waiting_messages(self.ledger, set().union(
            *(stall.queues_of(spec, self.settings.queues.all()) for spec in specs)))
        for spec in specs:
            run_id = spec.run_id
            if stall.in_flight(spec, held, alive, messages):
                continue
            try:
                refs = stall.restart_stalled(self.app, self.ledger, spec)
            except redis.ConnectionError:
                raise
            except Exception as exc:  # an agent record of the wrong shape, say
                self.fail_malformed(run_id, exc)
                continue
            for ref in refs:
                what = ref.describe()
                self.ledger.event(run_id, "requeued", ref.agent_id, what=what,
                                  dead_worker=f"none: the run was quiet for {self.settings.stall_after:g}s "
                                              f"with nothing in flight")
                log.warning("run %s was stalled: sent %s again", run_id, what)
                sent.append(what)
        return sent

    def enforce_deadlines(self) -> None:
        now = time.time()
        for run_id in self.ledger.active_runs():
            run = self.ledger.run(run_id)
            if not run or run.get("status") in TERMINAL or not self.ledger.has_run(run_id):
                self.ledger.redis.srem(self.ledger.keys.active, run_id)
                continue
            try:
                self._enforce_deadline(run_id, run, now)
            except redis.ConnectionError:
                raise
            except Exception as exc:
                self.fail_malformed(run_id, exc)

    def _enforce_deadline(self, run_id: str, run: dict[str, str], now: float) -> None:
        spec = self.ledger.spec(run_id)
        reason = repair.overdue(self.ledger, spec, run, now)
        if reason:
            # A run that waited for a worker nobody started says so (`crewq run -T` ends here too).
            reason = "; ".join([reason, *run_gaps(self.ledger, spec, self.settings.queues)])
            if self.ledger.finish_run(run_id, RunStatus.FAILED, error=reason):
                repair.revoke_run(self.app, self.ledger, run_id)
            return
        for agent_id, attempt, turn, error in repair.overdue_agents(self.ledger, spec, now):
            report_failure(self.ledger, run_id, agent_id, attempt, turn, error)

    def _spec(self, run_id: str) -> RunSpec | None:
        try:
            return self.ledger.spec(run_id)
        except redis.ConnectionError:
            raise
        except Exception as exc:
            self.fail_malformed(run_id, exc)
            return None

    def fail_malformed(self, run_id: str, exc: Exception) -> None:
        """A run whose record in Redis cannot be read (no spec, a spec of the wrong shape, fields that are no
        numbers) fails with the reason and leaves the sweep: logged once, and the supervisor carries on."""
        reason = f"the run's record in Redis cannot be read: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        log.error("run %s: %s; the run is failed", run_id, reason)
        try:
            self.ledger.finish_run(run_id, RunStatus.FAILED, error=reason)
        finally:
            self.ledger.redis.srem(self.ledger.keys.active, run_id)


def log_decision(decision: Decision, run_id: str, error: str | None) -> None:
    """A restart at INFO, giving up at WARNING: the lines an operator looks for."""
    with logs.bound(run_id, decision.agent):
        if decision.action == "restart":
            log.info("run %s: attempt %d of %s failed (%s); %s restarts %s in %gs (%s)", run_id, decision.attempt,
                     decision.agent, error, decision.policy, ", ".join(sorted(decision.targets)), decision.countdown,
                     decision.reason)
        elif decision.fallback:
            log.warning("run %s: attempt %d of %s failed (%s); giving up (%s): %s takes over for %s", run_id,
                        decision.attempt, decision.agent, error, decision.reason, decision.fallback,
                        decision.stands_for)
        else:
            log.warning("run %s: attempt %d of %s failed (%s); giving up: %s", run_id, decision.attempt,
                        decision.agent, error, decision.reason)


class SupervisorThread:
    """A supervisor in a thread of this process (the embedded default, and tests)."""

    def __init__(self, app: CrewqApp, name: str | None = None, block_ms: int = 300):
        self.supervisor = Supervisor(app, name, block_ms)
        self.thread = threading.Thread(target=self.supervisor.run, name="crewq-supervisor", daemon=True)

    def __enter__(self) -> Supervisor:
        self.thread.start()
        return self.supervisor

    def __exit__(self, *exc) -> None:
        self.supervisor.stop()
        self.thread.join(10)


__all__ = ["Supervisor", "SupervisorThread", "fail_run"]
