"""A task message's body is checked for its shape before Celery reads it, so that one bad message is
dropped, not the worker.

Celery's default strategy unpacks a protocol-2 body as `args, kwargs, embed` in the consumer itself
(celery/worker/request.py), outside any task's error handling: a JSON body of the wrong shape (`[1]`,
`{"a": 1}`, `5`) raises a ValueError or TypeError there, which the consumer treats as unrecoverable, so
the worker stops and the message, acknowledged late, goes back to the queue for the next worker. The
consumer drops a message whose strategy raises `InvalidTaskError` (rejected without requeue), the way
it drops a body that is not JSON; the check below does the same, with one log line. Every task
of crewq's app (Celery's own included) gets this strategy through the app's task class.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task as CeleryTask
from celery.worker.strategy import default

log = logging.getLogger("crewq.worker")


def body_problem(payload: Any) -> str | None:
    """What is wrong with a task message's decoded body, or None. Read as Celery's strategy reads it: a
    mapping with `args` or `task` (protocol 1, or hybrid) needs a list `args` and a mapping `kwargs`; anything else
    is protocol 2, `[args, kwargs, embed]`."""
    if isinstance(payload, dict) and ("args" in payload or "task" in payload):
        if not isinstance(payload.get("args", []), (list, tuple)) or not isinstance(payload.get("kwargs", {}), dict):
            return f"a protocol-1 body needs a list 'args' and a mapping 'kwargs', not {_short(payload)}"
        return None
    if not isinstance(payload, (list, tuple)) or len(payload) != 3:
        return f"the body must be [args, kwargs, embed], not {_short(payload)}"
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict) or not isinstance(embed, (dict, type(None))):
        return f"the body must be [list, mapping, mapping], not {_short(payload)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def checked(task, app, consumer, **kwargs):
    """Celery's default strategy behind the body check."""
    handle = default(task, app, consumer, **kwargs)

    def task_message_handler(message, body, ack, reject, callbacks, **rest):
        problem = body_problem(message.payload if body is None else body)
        if problem:
            # What the consumer does for an InvalidTaskError, in one line instead of a traceback and the body.
            log.error("task %s (id %s): malformed message dropped: %s", task.name,
                      (message.headers or {}).get("id"), problem)
            message.reject_log_error(log, consumer.connection_errors)
            return None
        return handle(message, body, ack, reject, callbacks, **rest)

    return task_message_handler


class Task(CeleryTask):
    Strategy = f"{__name__}:checked"
