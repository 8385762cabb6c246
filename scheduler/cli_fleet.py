"""Fleet commands: the supervisor, cancel and resume, beat."""

from __future__ import annotations

from .cli import main  # noqa: F401
