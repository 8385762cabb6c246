"""Option parsing shared by the commands."""

from __future__ import annotations

import click


def parse_inputs(values: tuple[str, ...]) -> dict[str, str]:
    inputs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--input")
        inputs[key] = value
    return inputs
