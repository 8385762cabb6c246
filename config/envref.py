"""`env:VAR` and `env:VAR:-default` references, and `.env` files.

References stay unresolved in the crew spec (and so in Redis and in Celery messages); they are
resolved only by `resolve()`, called in the worker process that needs the value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from dotenv import dotenv_values

from .errors import ConfigError, MissingEnvError

_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)


def is_ref(value: object) -> bool:
    return isinstance(value, str) and _REF.match(value) is not None


def ref_name(value: object) -> str | None:
    """The variable a reference names, or None for a plain value."""
    match = _REF.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def check_ref(value: str) -> None:
    """Raise ValueError for a string that starts like a reference but is malformed."""
    if value.startswith("env:") and not _REF.match(value):
        raise ValueError(f"bad env reference {value!r}: write env:VAR or env:VAR:-default")


def resolve(value: Any, env: Mapping[str, str] | None = None, *, key: str | None = None) -> Any:
    """Resolve a reference (or every reference inside dicts and lists); other values pass through."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: resolve(v, env, key=f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, env, key=f"{key}[{i}]" if key else f"[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    match = _REF.match(value)
    if not match:
        return value
    name, default = match.group(1), match.group(2)
    check = getattr(env, "check_ref", None)  # a worker's environment checks the fleet policy first
    if check is not None:
        check(name, key)
    if name in env and env[name] != "":
        return env[name]
    if default is not None:
        return default
    raise MissingEnvError(name, key=key)


def load_env_file(crew_dir: str | Path, env_file: str) -> dict[str, str]:
    """Read a `.env` file confined to the crew file's folder (no absolute paths, no `..` out).

    A missing file reads as empty: a fresh `crewq init` names `.env` before the user has written one,
    and on a fleet the variables usually come from the process environment instead. A variable that
    is then missing is reported by name where it is used. `"."` (Routex) is the folder's `.env`."""
    base = Path(crew_dir).resolve()
    path = (base / (".env" if env_file == "." else env_file)).resolve()  # Routex: "." is the .env beside the file
    if not path.is_relative_to(base):
        raise ConfigError(f"env_file {env_file!r} is outside the crew file's folder {base}",
                          key="runtime.env_file")
    if not path.exists():
        return {}
    if not path.is_file():
        raise ConfigError(f"env_file {env_file!r} in {base} is not a file", key="runtime.env_file")
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def environment(crew_dir: str | Path | None, env_file: str | None) -> dict[str, str]:
    """The process environment over the crew's `.env` values (the process wins, as with docker)."""
    merged: dict[str, str] = {}
    if env_file and crew_dir:
        merged.update(load_env_file(crew_dir, env_file))
    merged.update(os.environ)
    return merged
