"""A submission checked at the door: types and sizes of the crew text, the inputs and the task,
the same for `crewq.submit` (any Celery client, Flower), `Client.submit` and `crewq submit`.
Each problem is a ConfigError that names the argument and, for sizes, the policy limit."""

from __future__ import annotations

from typing import Any

from crewq.config.errors import ConfigError
from crewq.config.limits import Limits

WHERE = "<submission>"


def check_crew_text(crew: Any) -> str:
    if not isinstance(crew, str):
        raise ConfigError(f"the crew must be YAML text (a string), not {type(crew).__name__}", file=WHERE,
                          key="crew")
    return crew


def check_inputs(inputs: Any, task: Any, limits: Limits) -> dict[str, str]:
    """The inputs as a dict of strings; ConfigError for a wrong type or an oversized value."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ConfigError(f"inputs must map names to strings, not {type(inputs).__name__}", file=WHERE, key="inputs")
    limits.check_size("max_inputs", len(inputs), "the number of inputs", file=WHERE, key="inputs")
    for name, value in inputs.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"inputs must map names to strings; {name!r} maps to {type(value).__name__}",
                              file=WHERE, key="inputs")
        limits.check_size("max_input_chars", len(value), f"input {name!r}", file=WHERE, key=f"inputs.{name}")
    if task is not None:
        if not isinstance(task, str):
            raise ConfigError(f"the task must be a string, not {type(task).__name__}", file=WHERE, key="task")
        limits.check_size("max_task_chars", len(task), "the task", file=WHERE, key="task")
    return dict(inputs)


def check_task_size(size: int, limits: Limits) -> None:
    """The task's length once its placeholders are filled, counted before it is built (`render_task`)."""
    limits.check_size("max_task_chars", size, "the task (placeholders filled)", file=WHERE, key="task")
