"""Fleet commands: the supervisor, cancel and resume, beat."""

from __future__ import annotations

import logging
import signal

import click

from .cli import main


@main.command()
@click.option("--name", help="this supervisor's name (default: host:pid)")
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def supervisor(name, metrics_port, metrics_addr, loglevel):
    """Run the supervisor: restarts by policy, requeues from dead workers, deadlines.
    Start two for a standby: one is active, the other takes over within seconds."""
    from . import commands
    from .supervisor import Supervisor
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = commands.client().app
    service = Supervisor(app, name)
    if metrics_port is not None:
        from .metrics import serve_metrics
        serve_metrics(service.ledger, metrics_port, metrics_addr)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.stop())
    service.run()


@main.command()
@click.argument("run_id")
def cancel(run_id):
    """Cancel a run: revoke its in-flight tasks and mark it cancelled."""
    from . import commands
    done = commands.client().cancel(run_id)
    click.echo(f"run {run_id} cancelled" if done else f"run {run_id} had already ended")


@main.command()
@click.argument("run_id")
def resume(run_id):
    """Continue a failed or cancelled run from the agents that completed."""
    from . import commands
    again = commands.client().resume(run_id)
    click.echo(f"run {run_id} resumed: {', '.join(again)} run again")


# --- beat (issue 6) ---------------------------------------------------------------------------------

import logging as _beat_logging  # noqa: E402  (this block stands alone)

import click as _click  # noqa: E402


@main.command()
@_click.option("--crews-dir", envvar="CREWQ_CREWS_DIR", required=True, type=_click.Path(file_okay=False),
              help="the folder of crew files whose `schedule:` beat follows [env: CREWQ_CREWS_DIR]")
@_click.option("--max-interval", type=float, default=None, help="longest sleep between checks, in seconds")
@_click.option("--list", "list_only", is_flag=True, help="print the schedules found and exit (no Redis needed)")
@_click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(crews_dir, max_interval, list_only, loglevel):
    """Run Celery beat over the schedules of every crew under --crews-dir: each firing submits a run.
    Run one beat per fleet (two would submit every run twice)."""
    from crewq.config.settings import Settings
    from . import beat as beats
    if list_only:
        entries, problems = beats.load_schedules(crews_dir, Settings.from_env().queues.control)
        for name, entry in entries.items():
            _click.echo(f"{name}  {beats.explain(entry)}")
        for problem in problems:
            _click.echo(f"skipped: {problem}", err=True)
        return
    from crewq.workers import logs

    from . import commands
    logs.enable()  # crewq's log format (CREWQ_LOG_FORMAT=json for JSON lines) once beat sets up logging
    app = commands.client().app
    problems = beats.configure(app, crews_dir)
    log = _beat_logging.getLogger("crewq.scheduler.beat")
    for problem in problems:
        log.warning("beat: skipped %s", problem)
    if not app.conf.beat_schedule:
        log.warning("beat: no crew under %s has a schedule", crews_dir)
    # When each schedule last fired lives in Redis (scheduler/beat.py), so no schedule file.
    app.Beat(max_interval=max_interval, loglevel=loglevel.upper()).run()  # the app names its scheduler
