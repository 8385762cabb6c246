"""Commands on a crew file: run, submit, validate, plan, init, schema."""

from __future__ import annotations

import json
from pathlib import Path

import click

from crewq.config.schema import json_schema

from .. import commands
from .options import parse_inputs
@click.command()
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
        result = commands.run(file, parse_inputs(inputs), task, timeout, concurrency, quiet=as_json)
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


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE")
@click.option("--task", help="replaces the crew file's task input")
def submit(file, inputs, task):
    """Submit a crew to the fleet and print its run id at once."""
    loaded, _ = commands.check(file)
    task, inputs = commands.task_override(loaded, task), parse_inputs(inputs)
    commands.warn(commands.task_warnings(loaded, inputs, task))
    click.echo(commands.client().submit(Path(file), inputs, task))


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file):
    """Check a crew file: schema, references, cycles, tools, providers. No network, no secrets."""
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
