"""What the CLI's commands do, apart from parsing and printing."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, NoReturn

from crewq.config.errors import ConfigError, MissingEnvError, RunError
from crewq.config.loader import LoadedCrew
from crewq.config.settings import Settings

from crewq.workers.app import create_app, settings_of
from crewq.workers.ledger import TERMINAL

from .embedded import embedded_fleet
from .progress import Progress
from .runs import Client, submit_loaded
from .validate import check, check_online, crew_warnings, task_override, task_warnings

class Interrupted(KeyboardInterrupt):
    """Ctrl-C while `crewq run` waited: the embedded run is cancelled; a fleet's run goes on."""

    def __init__(self, run_id: str, cancelled: bool):
        super().__init__(run_id)
        self.run_id, self.cancelled = run_id, cancelled


TEMPLATES = Path(__file__).resolve().parent.parent / "config" / "templates"
DEFAULT_WAIT = 3600.0


def client() -> Client:
    settings = Settings.from_env()
    if not settings.redis_url:
        raise ConfigError("this command needs a fleet: set CREWQ_REDIS_URL (or REDIS_URL) to its Redis")
    return Client(create_app(settings))


def run(file: str, inputs: dict[str, str], task: str | None, timeout: float | None,
        concurrency: int, quiet: bool = False, env_file: str | None = None) -> dict[str, Any]:
    """Run a crew to its end, on the fleet when a broker is configured, else on the embedded default.
    `timeout` (Routex's `-T`) replaces the crew's max_duration: the run's deadline."""
    loaded, _ = check(file, env_file)
    if timeout:
        crew = loaded.crew
        loaded = replace(loaded, crew=crew.model_copy(update={"task": crew.task.model_copy(
            update={"max_duration": timeout})}))
    task = task_override(loaded, task)
    warn(task_warnings(loaded, inputs, task))
    wait = loaded.crew.task.max_duration + 30 if loaded.crew.task.max_duration else DEFAULT_WAIT
    settings = Settings.from_env()
    if settings.redis_url:
        return _run_on(Client(create_app(settings)), loaded, inputs, task, wait, quiet, cancel_on_exit=False)
    with embedded_fleet(settings, concurrency=concurrency) as app:
        try:
            return _run_on(Client(app), loaded, inputs, task, wait, quiet, cancel_on_exit=True)
        finally:
            _embedded.append(app)


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
    if not any(getattr(app, "crewq_left_running", False) for app in _embedded):
        sys.exit(code)
    from crewq.workers import tracing
    from crewq.workers.tools.mcp import forget_servers
    forget_servers()  # MCP stdio children and HTTP sessions, which atexit would have closed
    tracing.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_on(client: Client, loaded: LoadedCrew, inputs, task, wait: float, quiet: bool,
            cancel_on_exit: bool) -> dict[str, Any]:
    run_id = submit_loaded(client.app, loaded, inputs, task)
    progress = None if quiet else Progress([a.id for a in loaded.crew.agents])
    try:
        try:
            client.wait(run_id, timeout=wait, on_event=progress)
        except RunError:
            pass  # reported below from the ledger, with the agents' states
    except KeyboardInterrupt:
        if cancel_on_exit:
            client.cancel(run_id, "interrupted")
        raise Interrupted(run_id, cancelled=cancel_on_exit) from None
    status = client.status(run_id)
    if status.get("status") not in TERMINAL:
        client.cancel(run_id, f"timed out after {wait:g}s")
        status = client.status(run_id)
    return summarize(status)


def summarize(status: dict[str, Any]) -> dict[str, Any]:
    agents = {a: {k: s.get(k) for k in ("status", "turn", "attempt", "hostname", "input_tokens", "output_tokens",
                                          "cost_usd", "unpriced_calls", "error") if s.get(k) not in (None, "")}
              for a, s in status["agents"].items()}
    usage = {k: int(status.get(k) or 0) for k in ("input_tokens", "output_tokens", "llm_calls", "unpriced_calls")}
    return {"run_id": status["run_id"], "status": status.get("status"), "output": status.get("output", ""),
            "error": status.get("error") or None, "agents": agents,
            "usage": {**usage, "cost_usd": round(float(status.get("cost_usd") or 0), 6)}}


def cost_text(data: dict[str, Any]) -> str:
    """The estimated cost of a run or an agent; calls to models without a price make it unknown, never free."""
    cost, unpriced = float(data.get("cost_usd") or 0), int(data.get("unpriced_calls") or 0)
    if not unpriced:
        return f"cost ${cost:.4f}"
    missing = f"{unpriced} call{'s' if unpriced > 1 else ''} to models without a price"
    return f"cost at least ${cost:.4f} ({missing})" if cost else f"cost unknown ({missing})"


def write_outputs(result: dict[str, Any], crew_file: str, extra: str | None, env_file: str | None = None) -> None:
    """The final output to the crew's task.output_file (relative to the crew file) and to -o."""
    if result["status"] != "succeeded":
        return
    from crewq.config import envref
    from crewq.config.loader import load_crew
    targets = []
    crew = load_crew(crew_file, env_file).crew
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
        target.write_text(result["output"] + "\n", encoding="utf-8")


def format_status(data: dict[str, Any]) -> str:
    lines = [f"run {data['run_id']}  {data.get('name', '')}  {data.get('status')}",
             f"tokens: {data.get('input_tokens') or 0} in, {data.get('output_tokens') or 0} out, {cost_text(data)}"]
    if data.get("error"):
        lines.append(f"error: {data['error']}")
    for agent, s in data["agents"].items():
        tokens = f"{s.get('input_tokens') or 0}/{s.get('output_tokens') or 0} tok"
        turn = int(s.get("turn") or 0) + 1 if s.get("status") not in ("waiting", "skipped") else 0
        cost = f"  {cost_text(s)}" if s.get("cost_usd") or s.get("unpriced_calls") else ""
        lines.append(f"  {agent:<16} {s.get('status', '?'):<10} turns {turn:<3} {tokens}{cost}"
                     f"  {s.get('hostname', '')}" + (f"  {s['error']}" if s.get("error") else ""))
    if data.get("status") == "succeeded":
        lines += ["", data.get("output", "")]
    return "\n".join(lines)


def format_event(event: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event["ts"])) + f".{int(event['ts'] * 1000) % 1000:03d}"
    rest = {k: v for k, v in event.items() if k not in ("id", "type", "agent", "ts")}
    details = " ".join(f"{k}={v}" for k, v in rest.items())
    return f"{stamp}  {event['type']:<16} {event.get('agent') or '-':<14} {details}"


def format_plan(loaded: LoadedCrew, waves: list[list[str]]) -> str:
    crew = loaded.crew
    lines = [f"{crew.runtime.name}: {len(crew.agents)} agents, {len(waves)} waves"]
    for n, wave in enumerate(waves):
        lines.append(f"wave {n}:")
        for agent_id in wave:
            agent = crew.agent(agent_id)
            llm = crew.llm_of(agent)
            deps = f"  after {', '.join(agent.depends_on)}" if agent.depends_on else ""
            tools = f"  tools: {', '.join(agent.tools)}" if agent.tools else ""
            lines.append(f"  {agent_id:<16} {llm.provider}/{llm.model or 'default'}{deps}{tools}")
    return "\n".join(lines)


def init(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, template in (("crew.yaml", "crew.yaml"), (".env.example", "env.example"),
                           (".gitignore", "gitignore")):
        target = directory / name
        if target.exists():
            yield f"kept     {target} (exists)"
            continue
        target.write_text((TEMPLATES / template).read_text(encoding="utf-8"), encoding="utf-8")
        yield f"created  {target}"


def worker(queues: str | None, pool: str, concurrency: int, hostname: str | None, loglevel: str) -> None:
    import os

    from crewq.workers import logs
    settings = Settings.from_env()
    app = create_app(settings)
    logs.enable()  # run_id and agent_id on every line of a task; CREWQ_LOG_FORMAT=json for JSON lines
    # On SIGQUIT (or SIGTERM with REMAP_SIGTERM=SIGQUIT, as in docker-compose.yml) a worker that holds
    # tasks gives them this long, then its cold shutdown hands their messages back to the queue.
    app.conf.worker_soft_shutdown_timeout = float(os.environ.get("CREWQ_SOFT_SHUTDOWN_TIMEOUT") or 20)
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
            "--queues=" + (queues or ",".join(settings_of(app).queues.all())), "--events"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
