"""`crewq`, the command line, assembled in one place: each command lives in a module of this
package by what it acts on (a crew file, a run, the fleet's processes) and is added here."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any, Callable
from urllib.parse import urlsplit

import click

from crewq.config.errors import ConfigError, CrewqError, RunError

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
            if url and urlsplit(url).scheme not in REDIS_SCHEMES:
                raise FleetUnreachable(f"malformed Redis URL {masked(url)}: it must start with redis://, "
                                       "rediss:// or unix://")
            return super().invoke(ctx)
        except FleetUnreachable as exc:
            click.echo(f"crewq: error: {exc}", err=True)
            sys.exit(3)
        except ConfigError as exc:
            click.echo(f"crewq: error: {exc}", err=True)
            sys.exit(2)
        except RunError as exc:
            click.echo(f"crewq: error: {exc}", err=True)
            sys.exit(1)
        except LookupError as exc:  # a run id that is not found: a mistake in the input
            click.echo(f"crewq: error: {exc.args[0] if exc.args else exc}", err=True)
            sys.exit(2)
        except CrewqError as exc:
            click.echo(f"crewq: error: {exc.args[0] if exc.args else exc}", err=True)
            sys.exit(1)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            click.echo(f"crewq: error: cannot reach the fleet's Redis at {masked(url or '')}: {exc}", err=True)
            sys.exit(3)


def _unreachable(exc: Exception) -> bool:
    """Redis (or kombu over it) could not be reached; imported only once something failed."""
    import kombu.exceptions
    import redis
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError))


REDIS_SCHEMES = ("redis", "rediss", "unix")


class FleetUnreachable(CrewqError):
    """The fleet's Redis URL is malformed (exit code 3, like an unreachable Redis)."""


def masked(url: str) -> str:
    """The URL with its password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@click.group(cls=CrewqGroup)
@click.version_option(package_name="crewq")
def main() -> None:
    """Multi-agent LLM crews on a Celery worker fleet over Redis.

    With CREWQ_REDIS_URL (or REDIS_URL) set, commands talk to that fleet. Without it, `crewq run`
    starts a private Redis and an in-process worker, and stops them when the run ends.
    """


for command in (crew.run, crew.submit, runs.runs, runs.status, runs.events, runs.cancel, runs.resume,
                crew.validate, crew.plan, crew.init, crew.schema,
                fleet.worker, fleet.supervisor, fleet.beat, fleet.tools, fleet.version, limits.limits):
    main.add_command(command)
