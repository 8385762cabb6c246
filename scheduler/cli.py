"""`crewq`: run, submit, status, events, validate, plan, init, worker, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from crewq.config.errors import ConfigError, CrewqError, RunError
from crewq.config.schema import json_schema

from . import commands


def _inputs(values: tuple[str, ...]) -> dict[str, str]:
    inputs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--input")
        inputs[key] = value
    return inputs


class CrewqGroup(click.Group):
    """User mistakes and failed runs end with a one-line message and an exit code, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"crewq: error: {exc}", err=True)
            sys.exit(2)
        except RunError as exc:
            click.echo(f"crewq: {exc}", err=True)
            sys.exit(1)
        except (CrewqError, LookupError) as exc:
            click.echo(f"crewq: error: {exc.args[0] if exc.args else exc}", err=True)
            sys.exit(1)


@click.group(cls=CrewqGroup)
@click.version_option(package_name="crewq")
def main() -> None:
    """Multi-agent LLM crews on a Celery worker fleet over Redis.

    With CREWQ_REDIS_URL (or REDIS_URL) set, commands talk to that fleet. Without it, `crewq run`
    starts a private Redis and an in-process worker, and stops them when the run ends.
    """


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE", help="fills {KEY} in the task")
@click.option("--task", help="replaces the crew file's task input")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="also write the final output here")
@click.option("--timeout", type=float, help="seconds to wait for the run (default: max_duration, else 1 h)")
@click.option("--concurrency", type=int, default=16, show_default=True, help="embedded worker threads")
def run(file, inputs, task, as_json, output, timeout, concurrency):
    """Run a crew and print its final output, with live progress per agent."""
    try:
        result = commands.run(file, _inputs(inputs), task, timeout, concurrency, quiet=as_json)
    except commands.Interrupted as stop:
        click.echo(f"\ninterrupted: run {stop.run_id} " + ("cancelled" if stop.cancelled else
                   f"goes on in the fleet (crewq status {stop.run_id}; crewq cancel {stop.run_id})"), err=True)
        commands.exit_now(130)
    commands.write_outputs(result, file, output)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        usage = result["usage"]
        click.echo(f"run {result['run_id']} {result['status']}: {usage['llm_calls']} LLM calls, "
                   f"{usage['input_tokens']} tokens in, {usage['output_tokens']} out, {commands.cost_text(usage)}"
                   + (f"; {result['error']}" if result["error"] else ""), err=True)
        click.echo(result["output"])
    commands.exit_now(0 if result["status"] == "succeeded" else 1)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE")
@click.option("--task", help="replaces the crew file's task input")
def submit(file, inputs, task):
    """Submit a crew to the fleet and print its run id at once."""
    click.echo(commands.client().submit(Path(file), _inputs(inputs), task))


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def status(run_id, as_json):
    """A run's status, per agent: state, turns, tokens, host."""
    data = commands.client().status(run_id)
    click.echo(json.dumps(data, indent=2, default=str) if as_json else commands.format_status(data))


@main.command()
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="keep printing until the run finishes")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
def events(run_id, follow, as_json):
    """A run's event log (the source of truth for its status)."""
    client = commands.client()
    if not client.ledger.has_run(run_id):
        raise LookupError(f"run {run_id} not found (unknown, or expired)")
    for event in client.events(run_id, follow=follow):
        click.echo(json.dumps(event, default=str) if as_json else commands.format_event(event))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file):
    """Check a crew file: schema, references, cycles, tools, providers. No network, no secrets."""
    loaded, waves = commands.check(file)
    click.echo(f"{file}: ok ({len(loaded.crew.agents)} agents in {len(waves)} waves)")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def plan(file):
    """Show the waves and each agent's provider and model. No network, no secrets needed."""
    click.echo(commands.format_plan(*commands.check(file)))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
def init(directory):
    """Create a crew, .env.example and .gitignore in DIRECTORY (never overwriting)."""
    for line in commands.init(Path(directory)):
        click.echo(line)


@main.command()
@click.option("--queues", "-Q", help="comma-separated queues (default: all of crewq's)")
@click.option("--pool", "-P", default="threads", show_default=True, type=click.Choice(["threads", "prefork", "solo"]))
@click.option("--concurrency", "-c", type=int, default=16, show_default=True)
@click.option("--hostname", "-n", help="the worker's node name")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(queues, pool, concurrency, hostname, loglevel):
    """Start a Celery worker on crewq's queues (needs CREWQ_REDIS_URL)."""
    commands.worker(queues, pool, concurrency, hostname, loglevel)


@main.group()
def tools():
    """Tools: built-ins, installed packages' tools, and what a crew's MCP servers publish."""


@tools.command("list")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
def tools_list(file):
    """List the built-in tools, and with FILE, the crew's custom and MCP tools (servers are contacted)."""
    from crewq.workers.tools.listing import list_tools
    rows = list_tools(file)
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        click.echo(f"{row.name:<{width}}  {row.source:<24}  {row.description.splitlines()[0] if row.description else ''}")


@main.command()
def schema():
    """Print the JSON Schema of the crew file, for editors."""
    click.echo(json.dumps(json_schema(), indent=2))


# Commands of the fleet (supervisor, beat, ...) live in their own modules and register on `main`.
from . import cli_fleet  # noqa: E402,F401

