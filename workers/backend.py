"""The Redis result backend, minus the client-side result subscription.

Celery's Redis backend subscribes to every task a client sends (pub/sub), so that `.get()` can
wake. crewq clients never call `.get()`: they follow the run's event stream. Without this, each
submitted wave leaves subscriptions behind, and a client whose Redis went away retries them.
"""

from __future__ import annotations

from celery.backends.redis import RedisBackend

ALIAS = "crewqredis"


class EventStreamRedisBackend(RedisBackend):
    def on_task_call(self, producer, task_id):
        pass

    def add_pending_result(self, result, weak=False, start_drainer=True):
        return result

    def remove_pending_result(self, result):
        return result

    def on_result_fulfilled(self, result):
        pass
