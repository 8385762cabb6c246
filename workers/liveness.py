"""Which worker holds which task, and which workers are alive.

Every worker process writes a heartbeat key with a short TTL; every turn, tool call and advance a
worker receives is recorded in the ledger's `inflight` hash until it finishes. When a heartbeat
expires, the supervisor gives the messages that worker had taken back to their queues
(`crewq.scheduler.supervisor.redeliver`), long before Redis's visibility timeout would. (Our own
heartbeat, not Celery's event heartbeats: the supervisor then needs no event consumer, and the
record ties a task id to the worker incarnation that holds it.)
"""

from __future__ import annotations

import logging
import os
import threading

from celery import bootsteps, signals
from redis.exceptions import ConnectionError as RedisConnectionError

from .app import ADVANCE_TASK, TOOL_TASK, TURN_TASK
from .refs import ids_only

log = logging.getLogger(__name__)
TRACKED = (TURN_TASK, TOOL_TASK, ADVANCE_TASK)


def identity(hostname: str) -> str:
    """A worker incarnation: a worker restarted under the same name is a new one, so what the dead
    one held is still requeued. So is a worker whose consumer reconnected to the broker (see
    `Reconnected`): the `.N` suffix counts its reconnections."""
    generation = _generations.get(hostname, 0)
    return f"{hostname}#{os.getpid()}" + (f".{generation}" if generation else "")


_generations: dict[str, int] = {}
_beats: dict[tuple[int, str], "Heartbeat"] = {}
_lock = threading.Lock()


class Heartbeat(threading.Thread):
    def __init__(self, app, host: str):
        super().__init__(name=f"crewq-heartbeat-{host}", daemon=True)
        self.ledger, self.host = app.ledger, host
        settings = app.settings
        self.interval, self.ttl = settings.heartbeat_interval, settings.heartbeat_ttl
        self.app = app
        self.stopped = threading.Event()
        self.beat()  # alive from the first moment, before any task is held

    def beat(self) -> None:
        # The queues it consumes, read at every beat: `celery control add_consumer` changes them.
        # (`crewq run` and `submit` say when no live worker serves a queue a crew needs.)
        self.ledger.beat(self.host, self.ttl, consumed_queues(self.app))

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # Redis away: the next beat tries again
                log.warning("heartbeat of %s failed: %s", self.host, exc)


def consumed_queues(app) -> list[str]:
    """The queues this process's worker consumes: those selected with -Q, else all the app knows."""
    queues = app.amqp.queues
    return sorted(queues.consume_from or queues)


def ensure_heartbeat(app, hostname: str) -> None:
    with _lock:
        key = (id(app), identity(hostname))
        if key not in _beats or not _beats[key].is_alive():
            _beats[key] = Heartbeat(app, identity(hostname))
            _beats[key].start()


def stop_heartbeat(hostname: str) -> None:
    with _lock:
        for key in [k for k in _beats if k[1] == identity(hostname)]:
            _beats.pop(key).stopped.set()


def new_incarnation(app, hostname: str) -> None:
    """From now on this worker is a new incarnation: the old one's heartbeat stops, so once it
    expires the supervisor gives back the messages the old one had taken."""
    stop_heartbeat(hostname)
    with _lock:
        _generations[hostname] = _generations.get(hostname, 0) + 1
    ensure_heartbeat(app, hostname)


class Reconnected(bootsteps.StartStopStep):
    """A consumer step: its first start makes the worker alive (its heartbeat), and its second and
    later starts follow a lost broker connection.

    A message taken over the lost connection can never be acked or rejected (Celery: "cannot be
    acknowledged after a connection loss"), and kombu could not put it back while Redis was away:
    it sits in kombu's `unacked` hash until the visibility timeout (1 h), its task recorded as held
    by a worker that is alive, so nothing would redeliver it. A new incarnation makes those records
    a dead worker's, and the supervisor's redelivery gives the messages back within the heartbeat
    TTL (every task is safe twice: a turn that finished meanwhile is not run again)."""
    requires = ("celery.worker.consumer.connection:Connection",)

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.starts = 0

    def start(self, parent) -> None:
        self.starts += 1
        if self.starts == 1:  # alive once it consumes (an embedded worker sends no worker_ready)
            ensure_heartbeat(parent.app, parent.hostname)
        else:
            log.warning("worker %s reconnected to the broker; what it took before is given back", parent.hostname)
            new_incarnation(parent.app, parent.hostname)


@signals.worker_init.connect
def _on_init(sender=None, **_):
    sender.app.steps["consumer"].add(Reconnected)  # a set: once per app, before the consumer is built


@signals.worker_ready.connect
def _on_ready(sender=None, **_):
    ensure_heartbeat(sender.app, sender.hostname)


@signals.worker_shutdown.connect
def _on_shutdown(sender=None, **_):
    stop_heartbeat(getattr(sender, "hostname", ""))


@signals.task_received.connect
def _on_received(sender=None, request=None, **_):
    if request is None or request.name not in TRACKED:
        return
    app = request.task.app
    ensure_heartbeat(app, request.hostname)
    # The ids only (`refs`): an advance's header results are not needed to requeue it.
    app.ledger.hold(request.id, request.name, ids_only(request.name, request.args), identity(request.hostname))


@signals.task_postrun.connect
def _on_postrun(sender=None, task_id=None, task=None, state=None, **_):
    if task is not None and task.name in TRACKED and state != "RETRY":
        # A retry keeps its record: the same task id comes back, possibly to another worker.
        try:
            task.app.ledger.release(task_id)
        except RedisConnectionError:  # the task said so already; a stale record is swept later
            log.debug("could not release %s: Redis is unreachable", task_id)


@signals.task_revoked.connect
def _on_revoked(sender=None, request=None, **_):
    # `request` is a worker Request, or the task's Context when it is revoked while running; the
    # sender (the task) has the name and the app either way.
    task_id = getattr(request, "id", None)
    if sender is not None and getattr(sender, "name", None) in TRACKED and task_id:
        sender.app.ledger.release(task_id)
