"""Commands on runs: runs, status, events, cancel, resume. `--json` prints the client API's models
(crewq.workers.ledger.state and .events) as JSON; the README shows their shapes."""

from __future__ import annotations

import json

import click

from .lazy import commands


@click.command()
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="how many runs")
@click.option("--json", "as_json", is_flag=True, help="a JSON list")
def runs(limit, as_json):
    """Recent runs, newest first: id, crew, status, started, finished."""
    found = commands.client().runs(limit)
    click.echo(json.dumps([run.model_dump(mode="json") for run in found], indent=2) if as_json
               else commands.format_runs(found))


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="the whole status as JSON")
def status(run_id, as_json):
    """A run's status, per agent: state, turns, tokens, host."""
    data = commands.client().status(run_id)
    click.echo(json.dumps(data.model_dump(mode="json"), indent=2) if as_json else commands.format_status(data))


@click.command()
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="keep printing until the run finishes")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
def events(run_id, follow, as_json):
    """A run's event log (the source of truth for its status)."""
    client = commands.client()
    if not client.ledger.has_run(run_id):
        raise LookupError(f"run {run_id} not found (unknown, or expired)")
    for event in client.events(run_id, follow=follow):
        click.echo(json.dumps(event.model_dump(mode="json")) if as_json else commands.format_event(event))


@click.command()
@click.argument("run_id")
def cancel(run_id):
    """Cancel a run: revoke its in-flight tasks and mark it cancelled."""
    done = commands.client().cancel(run_id)
    click.echo(f"run {run_id} cancelled" if done else f"run {run_id} had already ended")


@click.command()
@click.argument("run_id")
def resume(run_id):
    """Continue a failed or cancelled run from the agents that completed."""
    again = commands.client().resume(run_id)
    click.echo(f"run {run_id} resumed: {', '.join(again)} run again")
