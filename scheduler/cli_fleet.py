"""Fleet commands: the supervisor, cancel and resume, beat."""

from __future__ import annotations

from .cli import main  # noqa: F401


# --- beat (issue 6) ---------------------------------------------------------------------------------

import logging as _beat_logging  # noqa: E402  (this block stands alone)

import click as _click  # noqa: E402


@main.command()
@_click.option("--crews-dir", envvar="CREWQ_CREWS_DIR", required=True, type=_click.Path(file_okay=False),
              help="the folder of crew files whose `schedule:` beat follows [env: CREWQ_CREWS_DIR]")
@_click.option("--schedule-file", "-s", default="celerybeat-schedule", show_default=True,
              help="where beat remembers when each schedule last fired (keep it on a volume)")
@_click.option("--max-interval", type=float, default=None, help="longest sleep between checks, in seconds")
@_click.option("--list", "list_only", is_flag=True, help="print the schedules found and exit (no Redis needed)")
@_click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(crews_dir, schedule_file, max_interval, list_only, loglevel):
    """Run Celery beat over the schedules of every crew under --crews-dir: each firing submits a run.
    Run one beat per fleet (two would submit every run twice)."""
    from config.settings import Settings
    from . import beat as beats
    if list_only:
        entries, problems = beats.load_schedules(crews_dir, Settings.from_env().queues.control)
        for name, entry in entries.items():
            _click.echo(f"{name}  {beats.explain(entry)}")
        for problem in problems:
            _click.echo(f"skipped: {problem}", err=True)
        return
    from workers import logs

    from . import commands
    logs.enable()  # crewq's log format (CREWQ_LOG_FORMAT=json for JSON lines) once beat sets up logging
    app = commands.client().app
    problems = beats.configure(app, crews_dir)
    log = _beat_logging.getLogger("scheduler.beat")
    for problem in problems:
        log.warning("beat: skipped %s", problem)
    if not app.conf.beat_schedule:
        log.warning("beat: no crew under %s has a schedule", crews_dir)
    app.Beat(schedule=schedule_file, max_interval=max_interval, loglevel=loglevel.upper(),
             scheduler=app.conf.beat_scheduler).run()
