"""Log lines that say which run and agent they are about.

While a worker runs one of crewq's tasks, every log record it emits (crewq's own, the providers',
httpx's, Celery's "succeeded" line) carries `run_id` and `agent_id`, taken from the task's arguments
(their layouts are in `refs`) by Celery's task_prerun/task_postrun signals into a context variable.
Lines outside a task get "-".

    CREWQ_LOG_FORMAT=json    one JSON object a line: ts, level, logger, message, run_id, agent_id, task, task_id
    CREWQ_LOG_FORMAT=text    (default) 2025-01-01 12:00:00,000 INFO crewq.workers.turn [run=ab12 agent=writer] ...

Every entry point uses it: `crewq worker` and `crewq beat` call `enable()` (it applies when Celery
sets up its logging), `crewq run` and `crewq supervisor` call `install()`, which sets up the root
logger of a process that is not a Celery worker the same way. Importing this
module connects the task signals, which cost nothing when no task runs. No message text is added:
the ids come from the arguments, which carry ids only, never conversation text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from celery import signals
from celery.exceptions import Reject
from redis.exceptions import ConnectionError as RedisConnectionError

from crewq.config.settings import Settings

from .refs import ref_of

_current: ContextVar[dict[str, str] | None] = ContextVar("crewq_log_context", default=None)
_state: dict[str, str | None] = {"format": None}  # None: not enabled; "text" or "json"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [run=%(run_id)s agent=%(agent_id)s] %(message)s"


def ids_of(task_name: str, args) -> dict[str, str]:
    ref = ref_of(task_name, args)
    if ref is None:
        return {}
    return {k: str(v) for k, v in (("run_id", ref.run_id), ("agent_id", ref.agent_id)) if v is not None}


@signals.task_prerun.connect(weak=False)
def _task_started(task_id=None, task=None, args=None, **_) -> None:
    _current.set({"task": getattr(task, "name", "") or "", "task_id": task_id or "",
                  **ids_of(getattr(task, "name", ""), args)})


@signals.task_postrun.connect(weak=False)
def _task_ended(**_) -> None:
    _current.set(None)


@contextmanager
def bound(run_id: str | None = None, agent_id: str | None = None) -> Iterator[None]:
    """Tag the log lines of a block outside a task (the supervisor, a client) with a run and agent."""
    token = _current.set({k: v for k, v in (("run_id", run_id), ("agent_id", agent_id)) if v})
    try:
        yield
    finally:
        _current.reset(token)


class ContextFilter(logging.Filter):
    """Adds run_id, agent_id, task and task_id to every record ("-" or "" when outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get() or {}
        for name, default in (("run_id", "-"), ("agent_id", "-"), ("task", ""), ("task_id", "")):
            if not getattr(record, name, None):
                setattr(record, name, context.get(name) or default)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": _none(getattr(record, "run_id", None)),
            "agent_id": _none(getattr(record, "agent_id", None)),
            "task": getattr(record, "task", None) or None,
            "task_id": getattr(record, "task_id", None) or None,
            "process": record.processName,
            "thread": record.threadName,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _none(value):
    return None if value in (None, "", "-") else value


def chosen(fmt: str | None = None) -> str:
    """`fmt`, else CREWQ_LOG_FORMAT, else text."""
    return (fmt or Settings.env_value("log_format") or "text").lower()


def formatter(fmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if chosen(fmt) == "json" else logging.Formatter(TEXT_FORMAT)


def apply(logger: logging.Logger, fmt: str | None = None) -> None:
    """Give every handler of the logger the crewq formatter and the context filter (once)."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(fmt))
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())


def enable(fmt: str | None = None) -> None:
    """Use crewq's format in this process's Celery worker or beat, once Celery sets up its logging."""
    _state["format"] = chosen(fmt)


def install(level: str | int = "INFO", fmt: str | None = None, stream=None) -> None:
    """Set up the root logger of a process that is not a Celery worker (one handler, crewq's format)."""
    enable(fmt)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    root.setLevel(level.upper() if isinstance(level, str) else level)
    apply(root, _state["format"])


class RevokedChordFilter(logging.Filter):
    """Cancelling a run revokes its tasks, and Celery's Redis backend then logs every chord whose
    header held one as an error with a traceback. The cancellation is in the run's events already:
    drop those records, and only those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "TaskRevokedError" not in record.getMessage()


class RejectedOnRedisOutageFilter(logging.Filter):
    """A turn or tool call that lost Redis rejects its message back to the queue after logging one
    line of its own; Celery would add a traceback for the Reject. Keep its line, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Reject) and isinstance(exc.reason, RedisConnectionError):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_noise() -> None:
    """Install the filters above on Celery's loggers (once)."""
    for name, kind in (("celery.backends.base", RevokedChordFilter), ("celery.backends.redis", RevokedChordFilter),
                       ("celery.app.trace", RejectedOnRedisOutageFilter)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


@signals.after_setup_logger.connect(weak=False)
@signals.after_setup_task_logger.connect(weak=False)
def _celery_logging_ready(logger=None, **_) -> None:
    if _state["format"] and logger is not None:
        apply(logger, _state["format"])


if Settings.env_value("log_format"):  # also for `celery -A crewq.workers.celery_app worker`
    enable()
