"""What the CLI's commands do, apart from parsing and printing."""

from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NoReturn

from crewq.config.errors import ConfigError, MissingEnvError, RunError
from crewq.config.states import RunStatus
from crewq.config.words import plural

from .progress import HeldLogs, Watch

# Celery, redis and the ledger are imported by the commands that reach a Redis: `crewq validate`
# (and `plan`, `init`, `schema`) need none of them, and they cost ~0.5 s of its start-up.
if TYPE_CHECKING:
    from crewq.config.loader import LoadedCrew
    from crewq.workers.app import CrewqApp
    from crewq.workers.ledger.events import Event
    from crewq.workers.ledger.state import RunInfo, RunState, Usage, WorkerInfo

    from .runs import Client
    from .serving import Gaps

# The CLI calls these as commands.* (re-exported, so F401 does not apply).
from .validate import check, check_online, crew_warnings, render_task, task_override, task_warnings  # noqa: F401


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while `crewq run` waited: the embedded run is cancelled; a fleet's run goes on."""

    def __init__(self, run_id: str, cancelled: bool):
        super().__init__(run_id)
        self.run_id, self.cancelled = run_id, cancelled


DEFAULT_WAIT = 3600.0


def client() -> Client:
    from crewq.config.settings import Settings
    from crewq.workers.app import create_app

    from .runs import Client
    settings = Settings.from_env()
    if not settings.redis_url:
        raise ConfigError("this command needs a fleet: set CREWQ_REDIS_URL (or REDIS_URL) to its Redis")
    return Client(create_app(settings))


def service_app(service: str) -> CrewqApp:
    """The app of a long-running service, once its Redis answers (it waits for a late one: `reach`)."""
    from .reach import wait_for_redis
    app = client().app
    wait_for_redis(app.settings.redis_url or "", f"crewq {service}")
    return app


def run(file: str, inputs: dict[str, str], task: str | None, timeout: float | None,
        concurrency: int, quiet: bool = False, watch: Watch | None = None,
        env_file: str | None = None, log_level: str | None = None) -> RunState:
    """Run a crew to its end, on the fleet when a broker is configured, else on the embedded default.
    Progress goes to stderr unless `quiet` (`watch` says how). `timeout` (Routex's `-T`) replaces the
    crew's max_duration: the run's deadline. `log_level`: set up this process's root logger in
    crewq's format (`crewq run`; CREWQ_LOG_FORMAT=json for JSON lines)."""
    from crewq.config.settings import Settings

    from .local_redis import LocalRedis
    loaded, waves = check(file, env_file)
    if timeout:
        crew = loaded.crew
        loaded = replace(loaded, crew=crew.model_copy(update={"task": crew.task.model_copy(
            update={"max_duration": timeout})}))
    task = task_override(loaded, task)
    warn(task_warnings(loaded, inputs, task))
    render_task(loaded, inputs, task)  # a missing input is named before anything starts
    wait = loaded.crew.task.max_duration + 30 if loaded.crew.task.max_duration else DEFAULT_WAIT
    settings = Settings.from_env()
    watch = None if quiet else (watch or Watch())
    if watch:
        where = "on the fleet" if settings.redis_url else "starting a private Redis and an in-process worker"
        print(f"{loaded.crew.runtime.name}: {plural(len(loaded.crew.agents), 'agent')} in "
              f"{plural(len(waves), 'wave')}; {where}", file=sys.stderr, flush=True)
    # The embedded default's Redis starts while Celery, kombu and redis-py are imported (~0.4 s).
    server = None if settings.redis_url else LocalRedis().spawn()
    try:
        if log_level:
            from crewq.workers import logs
            logs.install(log_level)
        from crewq.workers.app import create_app

        from .embedded import embedded_fleet
        from .runs import Client
        if settings.redis_url:
            from .serving import Gaps
            fleet = Client(create_app(settings))
            gaps = Gaps(fleet.ledger, loaded.crew, settings.queues, every=settings.heartbeat_interval)
            warn(gaps.check())  # before the run starts: no worker, or none on a queue it needs
            return _run_on(fleet, loaded, waves, inputs, task, wait, watch, cancel_on_exit=False, gaps=gaps)
        with embedded_fleet(settings, concurrency=concurrency, server=server) as app:
            try:
                return _run_on(Client(app), loaded, waves, inputs, task, wait, watch, cancel_on_exit=True)
            finally:
                _embedded.append(app)
    finally:
        if server:
            server.stop()  # (already stopped by embedded_fleet, unless the imports failed)


# The embedded apps of this process's runs: one that left a task running (a cancelled run's turn in
# its LLM call) makes `exit_now` exit without waiting for that thread.
_embedded: list = []


def warn(lines: list[str]) -> None:
    for line in lines:
        print(f"crewq: warning: {line}", file=sys.stderr)


def exit_now(code: int) -> NoReturn:
    """Exit with `code`. When an embedded run left a turn in flight (an LLM call that may take
    minutes), the run is over and its Redis gone: exit without waiting for that thread (Python
    joins a ThreadPoolExecutor's threads at exit, daemon or not)."""
    if not any(app.left_running for app in _embedded):
        sys.exit(code)
    from crewq.workers import tracing
    from crewq.workers.tools.mcp import forget_servers
    forget_servers()  # MCP stdio children and HTTP sessions, which atexit would have closed
    tracing.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_on(client: Client, loaded: LoadedCrew, waves, inputs, task, wait: float, watch: Watch | None,
            cancel_on_exit: bool, gaps: Gaps | None = None) -> RunState:
    from .runs import new_run_id, submit_loaded
    run_id = new_run_id()  # the view is up before the first wave is emitted
    progress = watch.start(loaded.crew.runtime.name, waves, client.ledger, run_id) if watch else None
    held = HeldLogs()

    def recheck(force: bool = False) -> None:
        """On a fleet, while waiting: a queue nobody serves (again), or a worker that came, as progress lines."""
        for line in gaps.check(force) if gaps else []:
            if progress:
                progress.note(line)

    def on_event(event: Event) -> None:
        if gaps and event.type == "turn_started" and gaps.waits_for(event.agent):
            recheck(force=True)
        if progress:
            progress(event.model_dump())  # (the progress reads events as dicts)

    if gaps and progress:
        for line in gaps.describe_current():
            progress.note(line)
    try:
        with held if progress else nullcontext():
            try:
                submit_loaded(client.app, loaded, inputs, task, run_id=run_id)
                client.wait(run_id, timeout=wait, on_event=on_event if progress or gaps else None,
                            on_idle=recheck if gaps else None)
            except RunError:
                pass  # reported below from the ledger, with the agents' states
            finally:
                if progress:
                    progress.close()
    except KeyboardInterrupt:
        if cancel_on_exit:
            client.cancel(run_id, "interrupted")
        raise Interrupted(run_id, cancelled=cancel_on_exit) from None
    finally:
        held.flush_to(sys.stderr)
    status = client.status(run_id)
    if not status.status.terminal:
        why = gaps.text() if gaps else ""
        client.cancel(run_id, f"timed out after {wait:g}s" + (f": {why}" if why else ""))
        status = client.status(run_id)
    if watch and progress and progress.view.error:
        watch.shown_error = progress.view.error  # the CLI's last line need not say it again
    return status


def cost_text(usage: Usage) -> str:
    """The estimated cost of a run or an agent; calls to models without a price make it unknown, never free."""
    cost, unpriced = usage.cost_usd, usage.unpriced_calls
    if not unpriced:
        return f"cost ${cost:.4f}"
    missing = f"{unpriced} call{'s' if unpriced > 1 else ''} to models without a price"
    return f"cost at least ${cost:.4f} ({missing})" if cost else f"cost unknown ({missing})"


def write_outputs(result: RunState, crew_file: str, extra: str | None, env_file: str | None = None) -> list[Path]:
    """The final output to the crew's task.output_file (relative to the crew file) and to -o,
    ending with a newline; returns the files written."""
    if result.status != RunStatus.SUCCEEDED:
        return []
    from crewq.config import envref
    from crewq.config.loader import load_crew
    targets = []
    crew = load_crew(crew_file, env_file=env_file).crew
    folder = Path(crew_file).resolve().parent
    # This command writes the file, so an env: output_file is resolved here. Unset, the run still
    # succeeded: its output is printed and only the file is skipped.
    try:
        output_file = envref.resolve(crew.task.output_file, envref.environment(folder, crew.runtime.env_file),
                                     key="task.output_file")
    except MissingEnvError as exc:
        warn([f"{exc}; the output is not written to a file"])
        output_file = None
    if output_file:
        targets.append(folder / output_file)
    if extra:
        targets.append(Path(extra))
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        text = result.output or ""
        target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return targets


def format_status(data: RunState) -> str:
    lines = [f"run {data.run_id}  {data.name}  {data.status}",
             f"tokens: {data.usage.input_tokens} in, {data.usage.output_tokens} out, {cost_text(data.usage)}"]
    if data.budgets:
        lines.append(budget_text(data))
    if data.error:
        lines.append(f"error: {data.error}")
    for agent, s in data.agents.items():
        tokens = f"{s.usage.input_tokens}/{s.usage.output_tokens} tok"
        cost = f"  {cost_text(s.usage)}" if s.usage.cost_usd or s.usage.unpriced_calls else ""
        handover = (f"  by its fallback {s.served_by}" if s.served_by else "") + (
            f"  standing in for {s.stands_for}" if s.stands_for else "")
        error = f"  {s.error}" if s.error and not s.served_by else ""
        lines.append(f"  {agent:<16} {s.status:<10} turns {s.turns:<3} {tokens}{cost}"
                     f"  {s.hostname or ''}{handover}{error}")
    for agent, left in data.breakers.items():
        lines.append(f"breaker open: {agent} " + (f"({left:g}s of cool-down left)" if left is not None
                                                   else "(half-open: the next attempt probes it)"))
    if data.status == RunStatus.SUCCEEDED:
        lines += ["", data.output or ""]
    return "\n".join(lines)


def budget_text(data: RunState) -> str:
    """Spend against the crew file's budgets (task.max_tokens, task.max_cost)."""
    from crewq.workers.budgets import spent
    used, budgets, parts = spent(data.usage.model_dump()), data.budgets, []
    if budgets.get("max_tokens"):
        parts.append(f"{used['tokens']} of {budgets['max_tokens']:g} tokens"
                     + (" (spent)" if used["tokens"] >= budgets["max_tokens"] else ""))
    if budgets.get("max_cost"):
        parts.append(f"${used['cost_usd']:.4f} of ${budgets['max_cost']:g}"
                     + (" (spent)" if used["cost_usd"] >= budgets["max_cost"] else ""))
    return "budget: " + ", ".join(parts)


def format_runs(runs: list[RunInfo]) -> str:
    """`crewq runs`: one line a run, newest first."""
    def when(at: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"
    lines = [f"{'run':<16}  {'crew':<20} {'status':<10} {'started':<19}  finished"]
    for run in runs:
        lines.append(f"{run.run_id:<16}  {run.name[:20]:<20} {run.status:<10} {when(run.started_at or run.submitted_at)}"
                     f"  {when(run.finished_at)}" + (f"  {run.error}" if run.error else ""))
    return "\n".join(lines)


def format_workers(workers: list[WorkerInfo]) -> str:
    """`crewq workers`: a line a live worker, then a line per task it holds."""
    if not workers:
        return "no live worker on the fleet (no worker has a fresh heartbeat)"
    now, lines = time.time(), []
    for w in workers:
        queues = ", ".join(w.queues) if w.queues is not None else "(not said)"
        lines.append(f"{w.host}  queues: {queues}  holds {plural(len(w.held), 'task')}")
        for task in w.held:
            since = f"  for {now - task.since:.1f}s" if task.since else ""
            lines.append(f"    {task.what}" + (f"  run {task.run_id}" if task.run_id else "") + since)
    return "\n".join(lines)


def format_event(event: Event) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts * 1000) % 1000:03d}"
    rest = event.model_dump(exclude={"id", "type", "agent", "ts"})
    details = " ".join(f"{k}={v}" for k, v in rest.items())
    return f"{stamp}  {event.type:<16} {event.agent or '-':<14} {details}"


def format_plan(loaded: LoadedCrew, waves: list[list[str]], form: str = "text") -> str:
    """The plan as text, or as a picture: `mermaid` (GitHub renders it) or Graphviz `dot`."""
    crew = loaded.crew
    if form != "text":
        from . import diagram
        return {"mermaid": diagram.mermaid, "dot": diagram.dot}[form](crew, waves)
    lines = [f"{crew.runtime.name}: {plural(len(crew.agents), 'agent')} in {plural(len(waves), 'wave')}"]
    for n, wave in enumerate(waves):
        lines.append(f"wave {n}:")
        for agent_id in wave:
            agent = crew.agent(agent_id)
            llm = crew.llm_of(agent)
            deps = f"  after {', '.join(agent.depends_on)}" if agent.depends_on else ""
            tools = f"  tools: {', '.join(agent.tools)}" if agent.tools else ""
            fallback = f"  fallback: {', '.join(agent.fallback)}" if agent.fallback else ""
            lines.append(f"  {agent_id:<16} {llm.provider}/{llm.model or 'default'}{deps}{tools}{fallback}")
    standby = [a for a in crew.agents if a.standby]
    if standby:
        lines.append("standby (run only in the place of an agent given up):")
        for agent in standby:
            llm = crew.llm_of(agent)
            fallback = f"  fallback: {', '.join(agent.fallback)}" if agent.fallback else ""
            lines.append(f"  {agent.id:<16} {llm.provider}/{llm.model or 'default'}{fallback}")
    return "\n".join(lines)


def init(directory: Path, provider: str = "scripted") -> Iterator[str]:
    from .scaffold import init as scaffold
    return scaffold(directory, provider)


def worker(queues: str | None, pool: str, concurrency: int, hostname: str | None, loglevel: str) -> None:
    from crewq.config.settings import Settings
    from crewq.workers import logs
    from crewq.workers.llm.limits import parse_presets
    settings = Settings.from_env()
    parse_presets(settings.limits or "")  # a malformed CREWQ_LIMITS stops the worker here, named
    app = service_app("worker")
    logs.enable()  # run_id and agent_id on every line of a task; CREWQ_LOG_FORMAT=json for JSON lines
    # On SIGQUIT (or SIGTERM with REMAP_SIGTERM=SIGQUIT, as in docker-compose.yml) a worker that holds
    # tasks gives them this long, then its cold shutdown hands their messages back to the queue.
    app.conf.worker_soft_shutdown_timeout = settings.soft_shutdown_timeout
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
            "--queues=" + (queues or ",".join(app.settings.queues.all()))]  # events: when Flower asks
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
