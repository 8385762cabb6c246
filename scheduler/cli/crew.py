"""Commands on a crew file: run, submit, validate, plan, init, schema."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from crewq.config.durations import parse_duration
from crewq.config.errors import ConfigError
from crewq.config.schema import json_schema

from .. import commands
from .options import parse_inputs


def _duration(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE", help="fills {KEY} in the task")
@click.option("-t", "--task", help="replaces the crew file's task input (else ROUTEX_TASK, if set)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="also write the final output here")
@click.option("-T", "--timeout", callback=_duration, metavar="DURATION",
              help="the run's deadline ('5m', '90s', seconds): replaces task.max_duration")
@click.option("-e", "--env-file", help="replaces runtime.env_file (inside the crew file's folder)")
@click.option("-l", "--log-level", type=click.Choice(["debug", "info", "warn", "error"], case_sensitive=False),
              help="log crewq's own lines at this level on stderr")
@click.option("--dry-run", is_flag=True, help="check everything (MCP servers included) and show the plan; run nothing")
@click.option("--concurrency", type=int, default=16, show_default=True, help="embedded worker threads")
def run(file, inputs, task, as_json, output, timeout, env_file, log_level, dry_run, concurrency):
    """Run a crew and print its final output, with live progress per agent."""
    if log_level:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("crewq").setLevel("WARNING" if log_level.lower() == "warn" else log_level.upper())
    if dry_run:
        loaded, waves = commands.check(file, env_file)
        commands.check_online(loaded)
        commands.warn(commands.task_warnings(loaded, parse_inputs(inputs), commands.task_override(loaded, task)))
        click.echo(commands.format_plan(loaded, waves))
        return
    try:
        result = commands.run(file, parse_inputs(inputs), task, timeout, concurrency, quiet=as_json,
                              env_file=env_file)
    except commands.Interrupted as stop:
        click.echo(f"\ninterrupted: run {stop.run_id} " + ("cancelled" if stop.cancelled else
                   f"goes on in the fleet (crewq status {stop.run_id}; crewq cancel {stop.run_id})"), err=True)
        commands.exit_now(130)
    commands.write_outputs(result, file, output, env_file)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        usage = result["usage"]
        click.echo(f"run {result['run_id']} {result['status']}: {usage['llm_calls']} LLM calls, "
                   f"{usage['input_tokens']} tokens in, {usage['output_tokens']} out, {commands.cost_text(usage)}"
                   + (f"; {result['error']}" if result["error"] else ""), err=True)
        click.echo(result["output"])
    commands.exit_now(0 if result["status"] == "succeeded" else 1)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE")
@click.option("-t", "--task", help="replaces the crew file's task input (else ROUTEX_TASK, if set)")
def submit(file, inputs, task):
    """Submit a crew to the fleet and print its run id at once."""
    loaded, _ = commands.check(file)
    task, inputs = commands.task_override(loaded, task), parse_inputs(inputs)
    commands.warn(commands.task_warnings(loaded, inputs, task))
    click.echo(commands.client().submit(Path(file), inputs, task))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print {valid, errors, warnings, agents, waves} as JSON")
def validate(file, as_json):
    """Check a crew file: schema, references, cycles, tools, providers. No network, no secrets."""
    if as_json:
        try:
            loaded, waves = commands.check(file)
        except ConfigError as exc:
            problems = getattr(exc, "problems", None) or [exc]
            click.echo(json.dumps({"file": file, "valid": False, "errors": [p._render() for p in problems],
                                   "warnings": []}, indent=2))
            commands.exit_now(2)
        click.echo(json.dumps({"file": file, "valid": True, "errors": [], "warnings": commands.crew_warnings(loaded),
                               "agents": [a.id for a in loaded.crew.agents], "waves": waves}, indent=2))
        return
    loaded, waves = commands.check(file)
    commands.warn(commands.crew_warnings(loaded))
    click.echo(f"{file}: ok ({len(loaded.crew.agents)} agents in {len(waves)} waves)")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def plan(file):
    """Show the waves and each agent's provider and model; connects to MCP servers whose tools agents name."""
    loaded, waves = commands.check(file)
    commands.check_online(loaded)
    commands.warn(commands.crew_warnings(loaded))
    click.echo(commands.format_plan(loaded, waves))


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
def init(directory):
    """Create a crew, .env.example and .gitignore in DIRECTORY (never overwriting)."""
    for line in commands.init(Path(directory)):
        click.echo(line)


@click.command()
def schema():
    """Print the JSON Schema of the crew file, for editors."""
    click.echo(json.dumps(json_schema(), indent=2))
