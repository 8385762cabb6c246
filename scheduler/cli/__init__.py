"""`crewq`, the command line, assembled in one place: each command lives in a module of this
package by what it acts on (a crew file, a run, the fleet's processes) and is added here."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any, Callable

import click

from crewq.config.errors import ConfigError, CrewqError, RunError

from ..reach import malformed, masked
from . import crew, fleet, limits, runs

# Tearing the interpreter down runs the cycle collector over every object Celery, kombu and pydantic
# made: ~0.2 s after `crewq run` printed its last line. Frozen first (this runs after the atexit
# handlers registered later), the final collections pass over them; the process is ending anyway.
atexit.register(gc.freeze)


class CrewqGroup(click.Group):
    """User mistakes and failed runs end with a one-line message and an exit code, not a traceback."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Click's own errors (usage, bad values) in crewq's one style, `crewq: error: ...`."""
        main: Callable[..., Any] = super().main  # click's overloads do not take *args beside standalone_mode=
        if not standalone_mode:
            return main(*args, standalone_mode=False, **kwargs)
        try:
            return main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            click.echo(f"crewq: error: {exc.format_message()}", err=True)
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                click.echo(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help.", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("crewq: aborted", err=True)
            sys.exit(1)

    def invoke(self, ctx):
        # Read as Settings reads it, without importing the settings' pydantic before every command
        # (`crewq run` prints its first line before the heavy imports).
        url = os.environ.get("CREWQ_REDIS_URL") or os.environ.get("REDIS_URL") or None
        try:
            problem = malformed(url) if url else None
            if problem:
                raise FleetUnreachable(problem)
            return super().invoke(ctx)
        except Exception as exc:
            code, message = _exit_for(exc, url)
            if code is None:
                raise
            click.echo(f"crewq: error: {message}", err=True)
            sys.exit(code)

def _exit_for(exc: Exception, url: str | None) -> tuple[int | None, str]:
    """The README's exit code for a failure, and its one line; (None, "") for a bug (a traceback)."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(exc, FleetUnreachable):
        return 3, str(exc)
    if isinstance(exc, ConfigError):
        return 2, str(exc)
    if isinstance(exc, RunError):
        return 1, str(exc)
    if isinstance(exc, LookupError):  # a run id that is not found: a mistake in the input
        return 2, str(text)
    if isinstance(exc, CrewqError):
        return 1, str(text)
    if _unreachable(exc):
        return 3, f"cannot reach the fleet's Redis at {masked(url or '')}: {exc}"
    return None, ""


def _unreachable(exc: Exception) -> bool:
    """Redis (or kombu over it) could not be reached; imported only once something failed."""
    import kombu.exceptions
    import redis
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError))


class FleetUnreachable(CrewqError):
    """The fleet's Redis URL is malformed (exit code 3, like an unreachable Redis)."""


@click.group(cls=CrewqGroup)
@click.version_option(package_name="crewq")
def main() -> None:
    """Multi-agent LLM crews on a Celery worker fleet over Redis.

    With CREWQ_REDIS_URL (or REDIS_URL) set, commands talk to that fleet. Without it, `crewq run`
    starts a private Redis and an in-process worker, and stops them when the run ends.
    """


for command in (crew.run, crew.submit, runs.runs, runs.status, runs.events, runs.cancel, runs.resume,
                crew.validate, crew.plan, crew.init, crew.schema,
                fleet.worker, fleet.workers, fleet.supervisor, fleet.beat, fleet.tools, fleet.version, limits.limits):
    main.add_command(command)
