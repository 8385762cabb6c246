"""Custom tools for the tests, loaded by crew files as `python: fakes.sample_tools:NAME`."""

from __future__ import annotations

import threading
import time

_meetings: dict[int, threading.Barrier] = {}
_meetings_lock = threading.Lock()


def slow_echo(text: str, delay: float = 0.5) -> str:
    """Wait `delay` seconds, then return `text`."""
    time.sleep(delay)
    return f"echo:{text}"


def meet_then_echo(text: str, parties: int, delay: float = 0.0, timeout: float = 30.0) -> str:
    """Wait until `parties` calls of this tool run at once in this worker process (a barrier: calls
    made one after another never get past it and fail after `timeout`), then `delay` seconds, then
    return `text`. Proof that tool calls overlap, without reading a clock."""
    with _meetings_lock:
        barrier = _meetings.setdefault(parties, threading.Barrier(parties, timeout=timeout))
    barrier.wait()
    time.sleep(delay)
    return f"echo:{text}"


def key_length(api_key: str | None = None) -> str:
    """Say how long the configured API key is (never the key itself)."""
    return f"key has {len(api_key or '')} characters"


def pid_then_wait(marker: str, delay: float = 30.0) -> str:
    """Write this process's pid to the file `marker`, then wait `delay` seconds (a task to kill)."""
    import os
    from pathlib import Path
    Path(marker).write_text(str(os.getpid()))
    time.sleep(delay)
    return "waited"
