"""Cost estimates from a price table: USD per million tokens, input and output, per provider and model.

    estimate_cost("anthropic", "claude-sonnet-4-5-20250929", Usage(...)) -> float | None

A model matches its exact name first, then the longest table key it starts with (so dated snapshots
such as `gpt-4o-2024-08-06` use the `gpt-4o` price), then the provider's `*` entry. Unknown →
None (shown as "unknown", never as free). `openai-compatible` servers are priced only by the user's
table: their model names say nothing about who pays.

The defaults are list prices at the time of writing; prices change, so users extend or override
them with a JSON file named by the environment variable `CREWQ_PRICING` (read on the worker that
makes the call, re-read when the file changes; a broken file is logged and ignored):

    {"openai": {"gpt-4o": {"input": 2.5, "output": 10}},
     "openai-compatible": {"*": {"input": 0, "output": 0}}}

Entries in the file win over the defaults, model by model. `register_prices` does the same from code.
Cache writes and reads are counted as input tokens (see the anthropic provider): an upper bound.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Mapping

from crewq.config.errors import ConfigError
from crewq.config.settings import Settings, env_var

from .types import Usage

log = logging.getLogger("crewq.llm.pricing")

ENV_VAR = env_var("pricing")
Prices = dict[str, dict[str, tuple[float, float]]]  # provider -> model -> (input, output) per 1M tokens

DEFAULT_PRICES: Prices = {
    "anthropic": {
        "claude-opus-4-5": (5.0, 25.0), "claude-opus-4-1": (15.0, 75.0), "claude-opus-4": (15.0, 75.0),
        "claude-sonnet-4-5": (3.0, 15.0), "claude-sonnet-4": (3.0, 15.0), "claude-3-7-sonnet": (3.0, 15.0),
        "claude-3-5-sonnet": (3.0, 15.0), "claude-haiku-4-5": (1.0, 5.0), "claude-3-5-haiku": (0.8, 4.0),
        "claude-3-haiku": (0.25, 1.25),
    },
    "openai": {
        "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0), "gpt-5-nano": (0.05, 0.4),
        "gpt-4.1": (2.0, 8.0), "gpt-4.1-mini": (0.4, 1.6), "gpt-4.1-nano": (0.1, 0.4),
        "gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6),
        "o3": (2.0, 8.0), "o3-mini": (1.1, 4.4), "o4-mini": (1.1, 4.4),
    },
    "gemini": {  # list prices for prompts up to 200k tokens
        "gemini-2.5-pro": (1.25, 10.0), "gemini-2.5-flash": (0.3, 2.5), "gemini-2.5-flash-lite": (0.1, 0.4),
        "gemini-2.0-flash": (0.1, 0.4), "gemini-2.0-flash-lite": (0.075, 0.3),
    },
    "ollama": {"*": (0.0, 0.0)},  # runs on your own machine
    "scripted": {"*": (0.0, 0.0)},
}

_lock = threading.Lock()
_registered: Prices = {}
_file_cache: tuple[str, float, Prices] | None = None


def estimate_cost(provider: str, model: str | None, usage: Usage) -> float | None:
    """USD for one call, or None when the model has no price."""
    price = price_of(provider, model)
    if price is None:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000


def price_of(provider: str, model: str | None, env: Mapping[str, str] | None = None) -> tuple[float, float] | None:
    for table in (_registered, _file_prices(env), DEFAULT_PRICES):
        models = table.get(provider)
        if models:
            found = _match(models, model or "")
            if found is not None:
                return found
    return None


def register_prices(table: Mapping[str, Mapping[str, object]]) -> None:
    """Add or override prices from code, same shape as the JSON file."""
    parsed = parse_table(table, "register_prices")
    with _lock:
        for provider, models in parsed.items():
            _registered.setdefault(provider, {}).update(models)


def parse_table(raw: object, source: str) -> Prices:
    if not isinstance(raw, Mapping):
        raise ConfigError("a price table maps provider → model → {input, output}", key=source)
    out: Prices = {}
    for provider, models in raw.items():
        if not isinstance(models, Mapping):
            raise ConfigError("expected a mapping of models", key=f"{source}.{provider}")
        for model, entry in models.items():
            where = f"{source}.{provider}.{model}"
            if not isinstance(entry, Mapping) or not {"input", "output"} <= set(entry):
                raise ConfigError("expected {input: USD per 1M tokens, output: USD per 1M tokens}", key=where)
            try:
                out.setdefault(str(provider), {})[str(model)] = (float(entry["input"]), float(entry["output"]))
            except (TypeError, ValueError):
                raise ConfigError("input and output are numbers (USD per 1M tokens)", key=where) from None
    return out


def _match(models: Mapping[str, tuple[float, float]], model: str) -> tuple[float, float] | None:
    if model in models:
        return models[model]
    prefixes = [k for k in models if k != "*" and model.startswith(k)]
    if prefixes:
        return models[max(prefixes, key=len)]
    return models.get("*")


def _file_prices(env: Mapping[str, str] | None) -> Prices:
    """The user's price file; a broken one is logged and ignored (a price never fails a turn)."""
    global _file_cache
    path = Settings.env_value("pricing", env)
    if not path:
        return {}
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        mtime = -1.0
    with _lock:
        if _file_cache and _file_cache[:2] == (path, mtime):
            return _file_cache[2]
    try:  # logged once per version of the file, not once per call
        if mtime < 0:
            raise OSError("no such file")
        table = parse_table(json.loads(Path(path).read_text(encoding="utf-8")), ENV_VAR)
    except (OSError, ValueError, ConfigError) as exc:
        log.warning("ignoring price file %s=%s: %s", ENV_VAR, path, exc)
        table = {}
    with _lock:
        _file_cache = (path, mtime, table)
    return table
