"""`crewq limits`: the fleet's LLM limits per provider or provider/model (rpm, tpm, concurrency)."""

from __future__ import annotations

import json

import click

from crewq.config.durations import parse_duration

from .lazy import commands


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="print each limit and its use as JSON")
@click.pass_context
def limits(ctx, as_json):
    """Fleet-wide LLM limits, in force on every worker at once: list them with their current use.

    A turn that must wait goes back to its queue (it holds no worker slot) and says so with an
    `llm_throttled` event. Workers also preset limits from CREWQ_LIMITS at start-up
    ("openai/gpt-4o:rpm=60,concurrency=4;anthropic:tpm=400000"), for scopes with none yet.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = commands.client().limits.usage()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no limits set (crewq limits set PROVIDER[/MODEL] --rpm N --tpm N --concurrency N)")
    for row in rows if not as_json else ():
        click.echo(format_row(row))


def format_row(row: dict) -> str:
    parts = [f"{name} {row[name][0]}/{row[name][1]}" for name in ("rpm", "tpm", "concurrency") if name in row]
    if "rpm" in row or "tpm" in row:
        parts.append(f"window {row['window']}s")
    if row.get("held_back"):
        parts.append(f"held back {row['held_back']:.1f}s (a 429's retry-after)")
    return f"{row['scope']:<28} " + "  ".join(parts)


@limits.command("set")
@click.argument("scope", metavar="PROVIDER[/MODEL]")
@click.option("--rpm", type=click.IntRange(min=1), help="LLM calls started per window")
@click.option("--tpm", type=click.IntRange(min=1), help="tokens (input + output) per window")
@click.option("--concurrency", type=click.IntRange(min=1), help="LLM calls in flight at once")
@click.option("--window", help="the rpm and tpm window, whole seconds: 60 (default), 30s, 2m")
def set_limit(scope, rpm, tpm, concurrency, window):
    """Set limits for a provider (all its models together) or one provider/model; limits not given keep
    their value."""
    try:
        seconds = parse_duration(window) if window is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    limit = commands.client().limits.set(scope, rpm=rpm, tpm=tpm, concurrency=concurrency, window=seconds)
    click.echo(f"{scope}: {limit.describe()}")
    from crewq.workers.llm.registry import provider_names
    known = provider_names()
    provider = scope.split("/", 1)[0]
    if provider not in known:  # set anyway: a worker may have a provider from a plugin this client lacks
        commands.warn([f"no LLM provider here is named {provider!r} (known: {', '.join(known)}); "
                       "the limit applies only to agents whose llm.provider is exactly that"])


@limits.command("clear")
@click.argument("scope", metavar="PROVIDER[/MODEL]")
def clear_limit(scope):
    """Remove a scope's limits (and their counters)."""
    cleared = commands.client().limits.clear(scope)
    click.echo(f"{scope}: limits cleared" if cleared else f"{scope}: had no limits")
