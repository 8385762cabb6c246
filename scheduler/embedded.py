"""The embedded default: a private Redis, an in-process worker (threads pool) on every crewq queue,
and an in-process supervisor.

    with embedded_fleet() as app:
        run_id = submit_loaded(app, loaded)

Nothing outlives the block: the worker thread is stopped and joined (its pool's threads too), the
supervisor's thread joined, the Redis server shut down and reaped.
"""

from __future__ import annotations

import logging
import socket
from contextlib import contextmanager
from typing import Iterator

from celery.contrib.testing.worker import start_worker
from celery.worker import state as worker_state

from crewq.config.policy import Policy
from crewq.config.settings import Settings
from crewq.workers.app import CrewqApp, create_app
from crewq.workers.liveness import stop_heartbeat

from .local_redis import LocalRedis
from .supervisor import SupervisorThread

log = logging.getLogger(__name__)


@contextmanager
def in_process_worker(app: CrewqApp, concurrency: int = 16, loglevel: str = "WARNING",
                      hostname: str = f"embedded@{socket.gethostname()}",
                      shutdown_timeout: float = 30.0, poll: float | None = None) -> Iterator[None]:
    """A worker thread on crewq's queues. Uses Celery's own embedded-worker helper (it waits until
    the consumer is ready and joins the thread on exit), without its ping task.

    `poll` (seconds) bounds each BRPOP the worker waits in (kombu's default: 1 s). The worker sees
    that it is to stop only when one returns, and closing its channel waits for the one in flight:
    with the default, stopping takes ~1 s of nothing."""
    queues = app.settings.queues.all()
    if poll is not None:
        app.conf.broker_transport_options = {**app.conf.broker_transport_options, "polling_interval": poll}
    worker = None
    try:
        with start_worker(app, concurrency=concurrency, pool="threads", loglevel=loglevel,
                          perform_ping_check=False, shutdown_timeout=shutdown_timeout, queues=queues,
                          hostname=hostname) as worker:
            yield
    except RuntimeError as exc:
        # Celery's helper gives up joining a worker whose pool still runs a task (a cancelled run's
        # turn in its LLM call). That task's run is over: leave the thread, keep the real error if any.
        if "failed to exit" not in str(exc):
            raise
        log.info("embedded worker: a task was still running after %gs; left behind", shutdown_timeout)
        if exc.__context__ is not None:
            raise exc.__context__ from None
    finally:
        stop_heartbeat(hostname)  # the worker's liveness thread lives in this process too
        # A task still executing (Celery's own registry of them) outlives the worker: `crewq run`
        # then exits without waiting for its thread.
        app.left_running = bool(worker_state.active_requests)
        _stop_pool(worker, wait=not app.left_running)


def _stop_pool(worker, wait: bool) -> None:
    """Celery's helper stops its worker by terminating it, and the threads pool does nothing on
    terminate: its idle threads would outlive the worker. A task still running finishes on its own."""
    executor = getattr(getattr(worker, "pool", None), "executor", None)
    if executor is not None:
        executor.shutdown(wait=wait, cancel_futures=True)


@contextmanager
def embedded_fleet(settings: Settings | None = None, concurrency: int = 16,
                   server: LocalRedis | None = None) -> Iterator[CrewqApp]:
    """`server`: a private Redis already spawned (`crewq run` spawns it before importing Celery);
    it is stopped at the end all the same."""
    settings = settings or Settings.from_env()
    with server or LocalRedis() as server:
        # The person running their own crew on their own machine is the operator: today's trust,
        # unless they name a policy (CREWQ_POLICY).
        policy = Policy.from_env(default=Policy.trusted())
        app = create_app(settings.model_copy(update={"redis_url": server.url, "policy": policy}))
        logging.getLogger("celery").setLevel(logging.WARNING)
        try:
            # By the time the block ends the run is over, so a task still running is not waited for long,
            # and the worker and the supervisor look for a stop every 0.05 s (idle, ~40 commands a second
            # to a Redis of their own) rather than every 1 s and 0.3 s: stopping took 0.9 s of 1.5 s. The
            # supervisor is told first and stops while the worker does. BRPOP takes a fraction of a
            # second from Redis 6.0 on.
            poll = 0.05 if server.version >= (6, 0) else None
            supervisor = SupervisorThread(app, name="embedded", block_ms=50)
            with supervisor, in_process_worker(app, concurrency=concurrency, shutdown_timeout=3.0, poll=poll):
                try:
                    yield app
                finally:
                    supervisor.supervisor.stop()
        finally:
            app.close()
