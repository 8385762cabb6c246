"""`commands` as a lazily loaded module: the CLI's first line (`crewq run` says what is starting)
is printed before Celery, pydantic and the providers are imported, which takes a second or more."""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from typing import cast


def lazy(name: str):
    """The module `name`, executed on first attribute access (the standard library's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = cast(ModuleSpec, importlib.util.find_spec(name))
    spec.loader = importlib.util.LazyLoader(cast(Loader, spec.loader))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


commands = lazy("crewq.scheduler.commands")
