"""The Celery app, configured by the rules in DESIGN.md. Built by `create_app`, never at import time.

`crewq.workers.celery_app` holds a module-level app for `celery -A crewq.workers.celery_app` command lines.
"""

from __future__ import annotations

import time
from functools import cached_property

from celery import Celery
from celery.exceptions import Reject

from crewq.config.errors import ConfigError
from crewq.config.settings import Settings

from . import logs
from .backend import ALIAS
from .broker import transport_for
from .ledger import Ledger
from .refs import ADVANCE_TASK, SUBMIT_TASK, TOOL_TASK, TURN_TASK, TurnRef

NO_BROKER = ("no broker configured: set CREWQ_REDIS_URL (or REDIS_URL), "
             "or use `crewq run`, which starts a private Redis")

# Task modules reach the workers by name; `scheduler` is imported by the worker, not by us.
TASK_MODULES = ["crewq.workers.turn", "crewq.workers.tool_call", "crewq.workers.liveness", "crewq.scheduler.advance",
                "crewq.scheduler.submit_task"]


class CrewqApp(Celery):
    """crewq's Celery app: the settings it was built from and its ledger are its own properties.

    The settings are kept on the instance, not in app.conf: `celery inspect conf` and Flower show
    the conf, and the settings hold the Redis URL with its password.
    """

    def __init__(self, *args, settings: Settings | None = None, **kwargs):
        self._settings = settings or Settings.from_env()
        # A task still executing when the embedded worker stopped (see scheduler/embedded.py).
        self.left_running = False
        super().__init__(*args, **kwargs)

    @property
    def settings(self) -> Settings:
        return self._settings

    @cached_property
    def ledger(self) -> Ledger:
        """One Ledger (one Redis connection pool) per app, per process."""
        settings = self.settings
        if not settings.redis_url:
            raise ConfigError(NO_BROKER)
        return Ledger.from_url(settings.redis_url, settings.key_prefix, settings.retention)


def create_app(settings: Settings | None = None, *, name: str = "crewq") -> CrewqApp:
    settings = settings or Settings.from_env()
    if not settings.redis_url:
        raise ConfigError(NO_BROKER)
    app = CrewqApp(name, broker=settings.redis_url, backend=f"{ALIAS}+{settings.redis_url}",
                   include=TASK_MODULES, set_as_current=False, settings=settings,
                   task_cls="crewq.workers.strategy:Task")  # a malformed message is dropped (strategy.py)
    app.loader.override_backends = {ALIAS: "crewq.workers.backend:EventStreamRedisBackend"}
    transport = {"visibility_timeout": int(settings.visibility_timeout)}
    q = settings.queues
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Off unless something reads them: the ledger is the record, nothing of crewq's reads a STARTED
        # state or an extended result, and Flower turns the workers' events on when it starts
        # (its enable_events control command). Each costs Redis writes on every task.
        task_track_started=False,
        result_extended=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        result_expires=int(settings.retention),
        result_chord_expires=int(settings.retention),
        broker_transport=transport_for(settings.redis_url),  # survives a Redis restart (see broker.py)
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        # The results backend's pool (redis-py's default: 100, then "Too many connections") must not
        # run out before the threads of a worker with high concurrency do.
        redis_max_connections=4096,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=q.control,
        task_routes={TURN_TASK: {"queue": q.turns}, TOOL_TASK: {"queue": q.tools},
                     ADVANCE_TASK: {"queue": q.control}, SUBMIT_TASK: {"queue": q.control}},
        worker_hijack_root_logger=False,
        # Celery's default beat scheduler keeps its state in a shelve file (not JSON); crewq's
        # keeps it in Redis as JSON, also for `celery -A crewq.workers.celery_app beat`. (A name: only
        # beat loads it.)
        beat_scheduler="crewq.scheduler.beat:CrewScheduler",
    )
    logs.quiet_expected_noise()
    return app


def turn_signature(app: Celery, spec, agent_id: str, turn: int, attempt: int):
    """An agent's turn, on the agent's own queue when it names one (capability routing)."""
    queue = spec.crew.agent(agent_id).queue
    options = {"queue": queue} if queue else {}
    return app.signature(TURN_TASK, args=TurnRef(spec.run_id, agent_id, turn, attempt).args(), immutable=True,
                         **options)


# A turn or tool call that lost Redis pauses this long before its message goes back to the queue,
# so that a flaky Redis is not hammered by the same message in a tight loop.
OUTAGE_PAUSE = 1.0


def requeue_after_outage(exc: Exception) -> Reject:
    """The exception that sends the current task's message back to its queue, after a short pause."""
    pause(OUTAGE_PAUSE)
    return Reject(exc, requeue=True)


pause = time.sleep  # a seam: tests record the pause instead of waiting it out
