"""Commands on a crew file: run, submit, validate, plan, init, schema."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from crewq.config.durations import parse_duration
from crewq.config.errors import ConfigError
from crewq.config.states import RunStatus
from crewq.config.words import plural

from .lazy import commands
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
@click.option("--plain", is_flag=True, help="progress as plain lines, also on a terminal (they are, off one)")
@click.option("--verbose", "-v", is_flag=True, help="show each tool call's arguments and result, cut short")
def run(file, inputs, task, as_json, output, timeout, concurrency, env_file, log_level, dry_run, plain, verbose):
    """Run a crew and print its final output, with live progress per agent."""
    started, inputs = time.time(), parse_inputs(inputs)
    if dry_run:
        loaded, waves = commands.check(file, env_file)
        commands.check_online(loaded)
        commands.warn(commands.task_warnings(loaded, inputs, commands.task_override(loaded, task)))
        click.echo(commands.format_plan(loaded, waves))
        return
    if not as_json:  # before the heavy imports: a second or more passes until the run starts
        where = "the fleet" if os.environ.get("CREWQ_REDIS_URL") or os.environ.get("REDIS_URL") else "the embedded default"
        click.echo(f"crewq: running {file} on {where}", err=True)
    level = "WARNING" if not log_level or log_level.lower() == "warn" else log_level.upper()
    try:
        watch = commands.Watch(plain=plain, verbose=verbose, started=started)
        result = commands.run(file, inputs, task, timeout, concurrency, quiet=as_json, watch=watch,
                              env_file=env_file, log_level=level)
    except commands.Interrupted as stop:
        click.echo(f"\ninterrupted: run {stop.run_id} " + ("cancelled" if stop.cancelled else
                   f"goes on in the fleet (crewq status {stop.run_id}; crewq cancel {stop.run_id})"), err=True)
        commands.exit_now(130)
    written = commands.write_outputs(result, file, output, env_file)
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), indent=2))  # `crewq status --json`'s shape
    else:
        usage = result.usage
        # The error was shown as the run ended, unless the wait ended first (a timeout).
        error = result.error if result.error and watch.shown_error != result.error else None
        click.echo(f"run {result.run_id} {result.status}: {plural(usage.llm_calls, 'LLM call')}, "
                   f"{usage.input_tokens} tokens in, {usage.output_tokens} out, {commands.cost_text(usage)}"
                   + (f"; {error}" if error else ""), err=True)
        for path in written:
            near = os.path.relpath(path)
            click.echo(f"wrote {path if near.startswith('..') else near}", err=True)
        sys.stderr.flush()
        click.echo(result.output or "")
    commands.exit_now(0 if result.status == RunStatus.SUCCEEDED else 1)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE", help="fills {KEY} in the task")
@click.option("-t", "--task", help="replaces the crew file's task input (else ROUTEX_TASK, if set)")
def submit(file, inputs, task):
    """Submit a crew to the fleet and print its run id at once."""
    loaded, _ = commands.check(file)
    task, inputs = commands.task_override(loaded, task), parse_inputs(inputs)
    commands.warn(commands.task_warnings(loaded, inputs, task))
    client = commands.client()
    run_id = client.submit(Path(file), inputs, task)
    click.echo(run_id)
    commands.warn(client.unserved(run_id))  # it waits for a worker: say so, naming the queue and agents


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
    click.echo(f"{file}: ok ({plural(len(loaded.crew.agents), 'agent')} in {plural(len(waves), 'wave')})")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "form", type=click.Choice(["text", "mermaid", "dot"]), default="text", show_default=True,
              help="text, or a picture of the DAG: mermaid (renders on GitHub) or Graphviz dot")
def plan(file, form):
    """Show the waves, the edges, each agent's provider, model and tools; connects to MCP servers
    whose tools agents name."""
    loaded, waves = commands.check(file)
    commands.check_online(loaded)
    commands.warn(commands.crew_warnings(loaded))
    click.echo(commands.format_plan(loaded, waves, form=form))


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--provider", "-p", default="scripted", show_default=True,
              type=click.Choice(["scripted", "anthropic", "openai", "gemini", "ollama", "openai-compatible"]),
              help="the LLM provider the crew starts on (scripted: offline, no key)")
def init(directory, provider):
    """Create a crew, .env.example and .gitignore in DIRECTORY (never overwriting), and print how to run it."""
    for line in commands.init(Path(directory), provider):
        click.echo(line)


@click.command()
def schema():
    """Print the JSON Schema of the crew file, for editors."""
    from crewq.config.schema import json_schema  # pydantic: only for this command
    click.echo(json.dumps(json_schema(), indent=2))
