"""The embedded default: a private Redis, an in-process worker (threads pool) on every crewq queue.

    with embedded_fleet() as app:
        run_id = submit_loaded(app, loaded)

Nothing outlives the block: the worker thread is stopped and joined, the Redis server reaped.
"""

from __future__ import annotations

import logging
import socket
from contextlib import contextmanager
from typing import Iterator

from celery import Celery
from celery.contrib.testing.worker import start_worker

from config.settings import Settings
from workers.app import create_app, settings_of

from .local_redis import LocalRedis


@contextmanager
def in_process_worker(app: Celery, concurrency: int = 16, loglevel: str = "WARNING",
                      hostname: str | None = None) -> Iterator[None]:
    """A worker thread on crewq's queues. Uses Celery's own embedded-worker helper (it waits until
    the consumer is ready and joins the thread on exit), without its ping task."""
    queues = settings_of(app).queues.all()
    kwargs = {"hostname": hostname} if hostname else {}
    with start_worker(app, concurrency=concurrency, pool="threads", loglevel=loglevel, perform_ping_check=False,
                      shutdown_timeout=30.0, queues=queues, **kwargs):
        yield


@contextmanager
def embedded_fleet(settings: Settings | None = None, concurrency: int = 16) -> Iterator[Celery]:
    settings = settings or Settings.from_env()
    with LocalRedis() as server:
        app = create_app(settings.model_copy(update={"redis_url": server.url}))
        logging.getLogger("celery").setLevel(logging.WARNING)
        try:
            with in_process_worker(app, concurrency=concurrency, hostname=f"embedded@{socket.gethostname()}"):
                yield app
        finally:
            app.close()
