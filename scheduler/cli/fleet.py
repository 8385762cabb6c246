"""Commands that run the fleet's processes and look at them: worker, workers, supervisor, beat, tools;
and version."""

from __future__ import annotations

import json
import logging
import signal

import click

from crewq.config.words import plural

from .lazy import commands


@click.command()
@click.option("--queues", "-Q", help="comma-separated queues (default: all of crewq's)")
@click.option("--pool", "-P", default="threads", show_default=True, type=click.Choice(["threads", "prefork", "solo"]),
              help="Celery's pool: threads for LLM turns (they wait on the network), prefork for heavy tools")
@click.option("--concurrency", "-c", type=int, default=16, show_default=True, help="tasks run at once")
@click.option("--hostname", "-n", help="the worker's node name")
@click.option("--loglevel", "-l", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
def worker(queues, pool, concurrency, hostname, loglevel):
    """Start a Celery worker on crewq's queues (needs CREWQ_REDIS_URL)."""
    commands.worker(queues, pool, concurrency, hostname, loglevel)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="a JSON list: [{host, queues, last_beat, held: [...]}]")
def workers(as_json):
    """Live workers (a fresh heartbeat): the queues each consumes and the turns and tool calls it holds."""
    found = commands.client().workers()
    click.echo(json.dumps([w.model_dump(mode="json") for w in found], indent=2) if as_json
               else commands.format_workers(found))


@click.group()
def tools():
    """Tools: built-ins, installed packages' tools, and what a crew's MCP servers publish."""


@tools.command("list")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--json", "as_json", is_flag=True, help="print [{name, source, description}] as JSON")
def tools_list(file, as_json):
    """List the built-in tools, and with FILE, the crew's custom and MCP tools (servers are contacted)."""
    from crewq.workers.tools.listing import list_tools
    rows = list_tools(file)
    if as_json:
        click.echo(json.dumps([{"name": r.name, "source": r.source, "description": r.description} for r in rows],
                              indent=2))
        return
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        about = f"UNAVAILABLE: {row.problem}" if row.problem else (row.description.splitlines() or [""])[0]
        click.echo(f"{row.name:<{width}}  {row.source:<24}  {about}")
    dead = [r for r in rows if r.problem]
    if dead:  # the others are listed; the exit code says something is wrong
        raise click.ClickException(f"{plural(len(dead), 'tool')} unavailable: {', '.join(r.source for r in dead)}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help='print {"version": ..., "python": ...} as JSON')
def version(as_json):
    """Print crewq's version (Routex's `version [--json]`)."""
    import platform

    from crewq import __version__
    if as_json:
        click.echo(json.dumps({"version": __version__, "python": platform.python_version()}))
    else:
        click.echo(f"crewq {__version__} (Python {platform.python_version()})")


@click.command()
@click.option("--name", help="this supervisor's name (default: host:pid)")
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True, help="the address the metrics are served on")
@click.option("--loglevel", "-l", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
def supervisor(name, metrics_port, metrics_addr, loglevel):
    """Run the supervisor: restarts by policy, requeues from dead workers, deadlines.
    Start two for a standby: one is active, the other takes over within seconds."""
    from crewq.workers import logs

    from ..supervisor import Supervisor
    logs.install(loglevel)  # crewq's format: CREWQ_LOG_FORMAT=json for JSON lines, as compose sets
    app = commands.service_app("supervisor")
    service = Supervisor(app, name)
    if metrics_port is not None:
        from ..metrics import serve_metrics
        serve_metrics(service.ledger, metrics_port, metrics_addr)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.stop())
    service.run()


@click.command()
@click.option("--crews-dir", type=click.Path(file_okay=False),
              help="the folder of crew files whose `schedule:` beat follows [default: CREWQ_CREWS_DIR]")
@click.option("--max-interval", type=float, default=None, help="longest sleep between checks, in seconds")
@click.option("--list", "list_only", is_flag=True, help="print the schedules found and exit (no Redis needed)")
@click.option("--loglevel", "-l", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
def beat(crews_dir, max_interval, list_only, loglevel):
    """Run Celery beat over the schedules of every crew under --crews-dir: each firing submits a run.
    Run one beat per fleet (two would submit every run twice)."""
    from crewq.config.settings import Settings

    from .. import beat as beats
    settings = Settings.from_env()
    crews_dir = crews_dir or settings.crews_dir
    if not crews_dir:
        raise click.UsageError("no crews folder: pass --crews-dir DIR or set CREWQ_CREWS_DIR")
    if list_only:
        entries, problems = beats.load_schedules(crews_dir, settings.queues.control)
        for name, entry in entries.items():
            click.echo(f"{name}  {beats.explain(entry)}")
        if not entries:
            click.echo(f"no crew under {crews_dir} has a schedule")
        for problem in problems:
            click.echo(f"skipped: {problem}", err=True)
        return
    from crewq.workers import logs
    logs.enable()  # crewq's log format (CREWQ_LOG_FORMAT=json for JSON lines) once beat sets up logging
    app = commands.service_app("beat")
    problems = beats.configure(app, crews_dir)
    log = logging.getLogger("crewq.scheduler.beat")
    for problem in problems:
        log.warning("beat: skipped %s", problem)
    if not app.conf.beat_schedule:
        log.warning("beat: no crew under %s has a schedule", crews_dir)
    # When each schedule last fired lives in Redis (scheduler/beat.py), so no schedule file.
    app.Beat(max_interval=max_interval, loglevel=loglevel.upper()).run()  # the app names its scheduler
