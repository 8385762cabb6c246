"""Redelivery: a dead worker's messages go back to their queues now, not after the visibility timeout.

kombu's Redis transport keeps every message a worker has taken in an `unacked` hash until it is
acked (the time it was taken in `unacked_index`), and puts it back only after the visibility
timeout (1 h by default). The supervisor knows sooner, from the workers' heartbeats:

- a message whose task a worker holds (`crewq.workers.liveness`) goes back once that worker is dead;
- a message no worker holds, taken more than `grace` seconds ago, goes back too: its worker died
  between taking it and recording it, or finished it more than `grace` ago and died before acking
  it (running it again is harmless, every task is safe twice). A task finished within `grace` is
  left alone: Celery acks just after the worker releases its record.

The message itself goes back, with kombu's own restore, so it keeps its task id. That is what
Celery 5.7's chord bookkeeping expects of a redelivery: a header task counts once however often it
runs, and a chord callback whose dispatching worker died is dispatched by the next one.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Iterator

from celery import Celery

from crewq.workers.app import ADVANCE_TASK, TOOL_TASK, TURN_TASK
from crewq.workers.ledger import Ledger
from crewq.workers.refs import Ref, ref_of

log = logging.getLogger("crewq.supervisor")
# Only these are safe to run twice; `crewq.submit` would start a second run, so it is left to Celery.
REDELIVERABLE = (TURN_TASK, TOOL_TASK, ADVANCE_TASK)


@dataclass(frozen=True)
class Orphan:
    tag: str  # kombu's delivery tag
    task_id: str
    name: str
    ref: Ref  # the ids the message carries
    dead_worker: str  # the worker that held it, or why none did

    @property
    def run_id(self) -> str:
        return self.ref.run_id

    @property
    def agent(self) -> str | None:
        return self.ref.agent_id

    def describe(self) -> str:
        return self.ref.describe()


class Redeliverer:
    def __init__(self, app: Celery, ledger: Ledger, grace: float):
        self.app, self.ledger, self.grace = app, ledger, grace
        self._connection = None

    def _channel(self):
        if self._connection is None:
            self._connection = self.app.connection_for_write()
        return self._connection.default_channel

    def close(self) -> None:
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def orphans(self, now: float) -> Iterator[Orphan]:
        channel = self._channel()
        client = channel.client
        released = self.ledger.released(older_than=now - self.grace)  # also forgets the old ones
        taken = client.zrange(channel.unacked_index_key, 0, -1, withscores=True)
        if not taken:
            return
        held = self.ledger.held()
        alive = self.ledger.alive({record["host"] for record in held.values()})
        raws = client.hmget(channel.unacked_key, [tag for tag, _ in taken])
        for (tag, since), raw in zip(taken, raws):
            if raw is None:
                continue  # acked meanwhile
            payload = _payload(raw)
            headers = payload.get("headers") or {}
            name, task_id = headers.get("task"), headers.get("id")
            if name not in REDELIVERABLE or not task_id:
                continue  # not ours to redeliver, or no task message at all (malformed: left to kombu)
            record = held.get(task_id)
            if record is not None and record["host"] in alive:
                continue  # running, or waiting for its countdown, on a live worker
            if record is None and now - since < self.grace:
                continue  # just taken: its worker records it in a moment
            if record is None and task_id in released:
                continue  # just finished: its worker acks it in a moment
            ref = ref_of(name, _args(payload))
            if ref is None:
                log.warning("task %s (%s): its arguments do not fit the task's layout; left to Celery", task_id, name)
                continue
            dead = record["host"] if record else "a worker that died before recording it"
            yield Orphan(_text(tag), task_id, name, ref, dead)

    def redeliver(self, orphan: Orphan) -> None:
        channel = self._channel()
        # The dead holder's record goes first: once restored, the message may be taken and recorded
        # by a live worker at once, and removing the record after that would orphan it a second time.
        # (Should we die between the two, the unheld message is restored by the next sweep.)
        self.ledger.take(orphan.task_id)
        # Right-pushed, so it is the next message taken from its queue (workers BRPOP).
        channel.qos.restore_by_tag(orphan.tag, client=channel.client)

    def sweep(self, now: float) -> list[Orphan]:
        done = []
        for orphan in list(self.orphans(now)):
            self.redeliver(orphan)
            self.ledger.event(orphan.run_id, "requeued", orphan.agent, what=orphan.describe(),
                              dead_worker=orphan.dead_worker, task_id=orphan.task_id)
            log.warning("redelivered %s of run %s (taken by %s)", orphan.describe(), orphan.run_id,
                        orphan.dead_worker)
            done.append(orphan)
        return done


def _payload(raw) -> dict:
    """kombu's `unacked` entry is [message, exchange, routing key]; anything else reads as no message."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return {}
    payload = entry[0] if isinstance(entry, list) and entry else None
    return payload if isinstance(payload, dict) and isinstance(payload.get("headers") or {}, dict) else {}


def _args(payload: dict) -> list:
    """The task's arguments; [] when the body is not [args, kwargs, embed] (ref_of then finds no layout)."""
    body = payload.get("body") or ""
    try:
        if (payload.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return []
    return list(args) if isinstance(args, list) else []


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
