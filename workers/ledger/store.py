"""The run ledger in Redis: run and agent state, recorded turns, the event stream, failure reports.

Writes that a redelivered task may repeat are first-write-wins (HSETNX, SET NX), so a turn or a
tool call delivered twice records once. Every run-scoped key gets the retention TTL once, when it is
created (at submission, or by the first write of its kind), not on every write: writes that keep a
key keep its TTL, and a resume renews them all.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any, Iterable, cast

import redis
from redis.typing import EncodableT

from crewq.config.states import SETTLED_AGENT, TERMINAL_RUN, AgentStatus, RunStatus

from .. import tracing
from ..runspec import RunSpec
from . import metrics
from .events import check as check_event
from .keys import Keys
from .state import RUN_INFO_FIELDS

TERMINAL = TERMINAL_RUN
POOL_SIZE, POOL_WAIT = 128, 30.0  # connections per process; seconds a thread may wait for one

# The statuses a script must not overwrite come as ARGV (count, then the values), never spelled
# out in Lua: the enums in config/states.py are their one source.
_ENDED = """
local n = tonumber(ARGV[2])
local s = redis.call('HGET', KEYS[1], 'status')
for i = 3, 2 + n do if s == ARGV[i] then return 0 end end
"""

# Settles an agent attempt once: writes only if the attempt (ARGV[1]) is current and not yet settled.
_SETTLE_BODY = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
""" + _ENDED + """
redis.call('HSET', KEYS[1], unpack(ARGV, 3 + n))
"""
_SETTLE = _SETTLE_BODY + "return 1"

# Stores a tool result unless one is there (ARGV: field, value, the TTL to set or 0).
_RESULT_BODY = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
"""

# A guarded write and the event it earns, in one round trip: the event and its writes (metrics,
# usage) happen only when the guard wrote. ARGV starts with the event: type, agent, ts, data, the
# stream's KEYS index, the count of writes, then command, KEYS index, field, amount for each; the
# guard's own ARGV follows, and the guard reads it as ARGV (a local shadowing the global).
_EVENT_PRELUDE = """
local E = ARGV
local n_ops = tonumber(E[6])
local ARGV = {unpack(E, 7 + 4 * n_ops)}
local function emit()
  redis.call('XADD', KEYS[tonumber(E[5])], 'NOMKSTREAM', '*', 'type', E[1], 'agent', E[2], 'ts', E[3], 'data', E[4])
  for i = 0, n_ops - 1 do
    local j = 7 + 4 * i
    redis.call(E[j], KEYS[tonumber(E[j + 1])], E[j + 2], E[j + 3])
  end
end
"""

# Records a turn's LLM reply unless the run has ended (KEYS[2]: its hash; returns -1) or a reply is
# there already (returns that one). ARGV: field, value, the TTL to set or 0, then the ended statuses.
_REPLY_BODY = """
local s = redis.call('HGET', KEYS[2], 'status')
for i = 4, #ARGV do if s == ARGV[i] then return -1 end end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return redis.call('HGET', KEYS[1], ARGV[1]) end
if ARGV[3] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
"""


def _with_event(body: str) -> str:
    return _EVENT_PRELUDE + body + "emit()\nreturn 1"

# A standby's output stands for the agent it replaced (KEYS[1]), once given up (status ARGV[1]) and once only.
_STAND_IN = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""

# Sets fields on a run's hash unless the run already ended; returns 1 when it wrote. (ARGV[1] unused.)
_FINISH = _ENDED + """
redis.call('HSET', KEYS[1], unpack(ARGV, 3 + n))
return 1
"""


def _script_args(first: str, ended: tuple[str, ...], fields: dict[EncodableT, Any]) -> list:
    return [first, len(ended), *ended, *(x for pair in fields.items() for x in pair)]

# The index of one LLM call, given once per call key and the same ever after (atomic, one round trip).
_CALL_INDEX = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then return tonumber(found) end
local n = redis.call('HINCRBY', KEYS[1], '_next', 1) - 1
redis.call('HSET', KEYS[1], ARGV[1], n)
if n == 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end  -- the key's first call created it
return n
"""


class Ledger:
    def __init__(self, client: redis.Redis, keys: Keys | None = None, retention: float = 7 * 86400):
        self.redis = client
        self.keys = keys or Keys()
        self.ttl = max(1, int(retention))
        self._finish = client.register_script(_FINISH)
        self._settle = client.register_script(_SETTLE)
        self._call_index = client.register_script(_CALL_INDEX)
        self._stand_in = client.register_script(_STAND_IN)
        self._settle_event = client.register_script(_with_event(_SETTLE_BODY))
        self._result_event = client.register_script(_with_event(_RESULT_BODY))
        self._reply_event = client.register_script(_with_event(_REPLY_BODY))

    @classmethod
    def from_url(cls, url: str, prefix: str = "crewq", retention: float = 7 * 86400) -> "Ledger":
        # redis-py's pool refuses a 101st connection ("Too many connections", a ConnectionError, which a
        # turn takes for an outage): a worker with hundreds of threads waits for a free one instead.
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=POOL_WAIT,
                                                     decode_responses=True)
        return cls(redis.Redis(connection_pool=pool), Keys(prefix), retention)

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, spec: RunSpec) -> None:
        k, now = self.keys, time.time()
        pipe = self.redis.pipeline()
        pipe.set(k.spec(spec.run_id), spec.to_json(), ex=self.ttl, nx=True)
        pipe.hset(k.run(spec.run_id), mapping={
            "status": RunStatus.QUEUED, "name": spec.crew.runtime.name, "submitted_at": now,
            "waves": json.dumps(spec.waves), "agents": json.dumps([a.id for a in spec.crew.agents])})
        pipe.expire(k.run(spec.run_id), self.ttl)
        for agent in spec.crew.agents:
            pipe.hset(k.agent(spec.run_id, agent.id), mapping={"status": AgentStatus.WAITING, "attempt": 0})
            pipe.expire(k.agent(spec.run_id, agent.id), self.ttl)
        pipe.zadd(k.runs, {spec.run_id: now})
        # The index forgets runs past the retention (their keys have expired), and expires itself
        # when no run has been submitted for that long.
        pipe.zremrangebyscore(k.runs, "-inf", now - self.ttl)
        pipe.expire(k.runs, self.ttl)
        pipe.sadd(k.active, spec.run_id)
        # The first event creates the run's stream, so its TTL is set here once (events never set it).
        self.event(spec.run_id, "run_submitted", pipe=pipe, create=True, name=spec.crew.runtime.name,
                   waves=spec.waves)
        pipe.expire(k.events(spec.run_id), self.ttl)
        pipe.execute()

    def spec(self, run_id: str) -> RunSpec:
        return _cached_spec(self, run_id)

    def has_run(self, run_id: str) -> bool:
        return bool(self.redis.exists(self.keys.spec(run_id)))

    def run(self, run_id: str) -> dict[str, str]:
        return _hash(self.redis.hgetall(self.keys.run(run_id)))

    def run_status(self, run_id: str) -> str | None:
        return _opt_text(self.redis.hget(self.keys.run(run_id), "status"))

    def set_run(self, run_id: str, **fields: Any) -> None:
        self.redis.hset(self.keys.run(run_id), mapping=_flat(fields))

    def finish_run(self, run_id: str, status: RunStatus, **fields: Any) -> bool:
        """Move a run to a terminal status once; returns False if it had ended already."""
        values = _flat({"status": status, "finished_at": time.time(), **fields})
        won = bool(self._finish(keys=[self.keys.run(run_id)], args=_script_args("", TERMINAL_RUN, values)))
        self.redis.srem(self.keys.active, run_id)
        if won:
            if tracing.tracer() is not None:  # before the event: who saw the run end can find its span
                tracing.run_ended(self.run(run_id), run_id, status, time.time())
            self.event(run_id, "run_finished", status=status,
                       **{k: v for k, v in fields.items() if k in ("error",)})
        return won

    def claim_wave(self, run_id: str, wave: int, token: str) -> bool:
        """True for the one `advance` (task id `token`) that may act on this wave's completion, and
        again for a redelivery of that same task, which may have died before it acted."""
        key = self.keys.wave(run_id, wave)
        if self.redis.set(key, f"claimed:{token}", nx=True, ex=self.ttl):
            return True
        return self.redis.get(key) == f"claimed:{token}"

    def mark_wave_advanced(self, run_id: str, wave: int) -> None:
        """The wave is done and the next one sent (a stalled run's repair says so for a lost advance)."""
        self.redis.set(self.keys.wave(run_id, wave), "advanced", ex=self.ttl)

    def wave_advanced(self, run_id: str, wave: int) -> None:
        """The claimer has acted: no redelivery of it acts again."""
        self.redis.set(self.keys.wave(run_id, wave), "advanced", xx=True, ex=self.ttl)

    def recent_runs(self, limit: int = 20) -> list[str]:
        return _texts(self.redis.zrevrange(self.keys.runs, 0, limit - 1))

    def run_infos(self, limit: int = 20) -> list[dict[str, str]]:
        """The newest `limit` runs' summary fields (`RUN_INFO_FIELDS` and `run_id`), newest first.
        Runs whose hash is gone (deleted, or expired before the index was trimmed) are passed over."""
        found: list[dict[str, str]] = []
        start = 0
        while len(found) < limit:
            ids = _texts(self.redis.zrevrange(self.keys.runs, start, start + limit - 1))
            if not ids:
                break
            pipe = self.redis.pipeline(transaction=False)
            for run_id in ids:
                pipe.hmget(self.keys.run(run_id), RUN_INFO_FIELDS)
            for run_id, values in zip(ids, pipe.execute()):
                if any(v is not None for v in values):
                    found.append({"run_id": run_id, **{k: v for k, v in zip(RUN_INFO_FIELDS, values) if v is not None}})
            start += len(ids)
        return found[:limit]

    # -- agents -------------------------------------------------------------------------------

    def agent(self, run_id: str, agent_id: str) -> dict[str, str]:
        return _hash(self.redis.hgetall(self.keys.agent(run_id, agent_id)))

    def agents(self, run_id: str, agent_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        ids = list(agent_ids)
        pipe = self.redis.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(self.keys.agent(run_id, agent_id))
        return dict(zip(ids, pipe.execute()))

    def update_agent(self, run_id: str, agent_id: str, **fields: Any) -> None:
        key = self.keys.agent(run_id, agent_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=_flat(fields))
        pipe.expire(key, self.ttl)
        pipe.execute()

    def run_and_agent(self, run_id: str, agent_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """The run's hash and one agent's, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.run(run_id))
        pipe.hgetall(self.keys.agent(run_id, agent_id))
        run, agent = pipe.execute()
        return run, agent

    def start_turn(self, run_id: str, agent_id: str, hostname: str, turn: int, *, state: dict | None = None,
                   **event: Any) -> float:
        """Mark the agent running this turn on `hostname` and append its `turn_started` event (fields
        `event`); returns when the agent started. One round trip. `state` is the agent's hash as the
        turn just read it: what it already says (when the attempt started, its last host) is not
        written or read again."""
        key, state = self.keys.agent(run_id, agent_id), state or {}
        pipe = self.redis.pipeline(transaction=False)
        known = state.get("started_at")
        if not known:
            pipe.hsetnx(key, "started_at", time.time())
        pipe.hset(key, mapping={"status": AgentStatus.RUNNING, "hostname": hostname, "turn": turn})  # TTL since create_run
        if state.get("hostname") != hostname:  # the last turn's host is in the set already
            pipe.sadd(self.keys.hosts(run_id, agent_id), hostname)
            pipe.expire(self.keys.hosts(run_id, agent_id), self.ttl)  # a new member: rare, so its TTL too
        self.event(run_id, "turn_started", agent_id, pipe=pipe, turn=turn, host=hostname, **event)
        if not known:
            pipe.hget(key, "started_at")
        done = pipe.execute()
        return float(known or done[-1])

    def settle_agent(self, run_id: str, agent_id: str, attempt: int, status: AgentStatus, *,
                     event: tuple[str, dict[str, Any]] | None = None, **fields: Any) -> bool:
        """Succeed or fail one attempt, once: False if the attempt is stale or already settled.
        `event` (type, data): the event only the settling call appends, in the same round trip."""
        values = _flat({"status": status, "finished_at": time.time(), **fields})
        args = _script_args(str(attempt), SETTLED_AGENT, values)
        key = self.keys.agent(run_id, agent_id)
        if event is None:
            return bool(self._settle(keys=[key], args=args))
        return bool(self._guarded_event(self._settle_event, key, run_id, agent_id, event, args))

    def stand_in(self, run_id: str, agent_id: str, by: str, output: str) -> bool:
        """The given-up agent succeeds with the output of `by`, its fallback (False: it was not failed)."""
        values = _flat({"status": AgentStatus.SUCCEEDED, "output": output, "served_by": by,
                        "finished_at": time.time()})
        args = [AgentStatus.FAILED, *(x for pair in values.items() for x in pair)]
        return bool(self._stand_in(keys=[self.keys.agent(run_id, agent_id)], args=args))

    def reset_agent(self, run_id: str, agent_id: str, attempt: int) -> None:
        """Start the agent over as `attempt`, from a clean conversation (older attempts' tasks go stale).
        Who it stands in for is kept (a standby's restart is still a stand-in); who stood in for it is not."""
        key = self.keys.agent(run_id, agent_id)
        pipe = self.redis.pipeline()
        pipe.hdel(key, "started_at", "finished_at", "output", "error", "turn", "served_by")
        pipe.hset(key, mapping={"status": AgentStatus.WAITING, "attempt": attempt})
        pipe.expire(key, self.ttl)
        pipe.execute()

    def forget_waves(self, run_id: str, from_wave: int, waves: int) -> None:
        """Drop the advanced-markers of waves from `from_wave` on, so they can advance again."""
        keys = [self.keys.wave(run_id, n) for n in range(from_wave, waves)]
        if keys:
            self.redis.delete(*keys)

    def reopen_run(self, run_id: str) -> None:
        """A failed or cancelled run goes back to running (resume)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.run(run_id), mapping={"status": RunStatus.RUNNING, "error": "", "restarts": 0})
        pipe.hdel(self.keys.run(run_id), "finished_at", "failed_agent")
        pipe.sadd(self.keys.active, run_id)
        for key in self.redis.scan_iter(match=self.keys.run_pattern(run_id), count=500):
            pipe.expire(key, self.ttl)  # TTLs are set at creation: a resumed run gets its retention again
        pipe.execute()

    def active_runs(self) -> list[str]:
        return list(_text_set(self.redis.smembers(self.keys.active)))

    def hosts(self, run_id: str, agent_id: str) -> set[str]:
        return _text_set(self.redis.smembers(self.keys.hosts(run_id, agent_id)))

    def add_usage(self, run_id: str, agent_id: str, input_tokens: int, output_tokens: int,
                  cost: float | None = None, pipe=None) -> None:
        """Count one LLM call's tokens and cost; with `pipe`, only queue the writes on it."""
        own, pipe = pipe is None, pipe or self.redis.pipeline(transaction=False)
        for key in (self.keys.agent(run_id, agent_id), self.keys.run(run_id)):
            pipe.hincrby(key, "input_tokens", input_tokens)
            pipe.hincrby(key, "output_tokens", output_tokens)
            pipe.hincrby(key, "llm_calls", 1)
            if cost is None:  # a model with no price: counted, so the cost is shown as unknown, not as free
                pipe.hincrby(key, "unpriced_calls", 1)
            elif cost:
                pipe.hincrbyfloat(key, "cost_usd", cost)
        if own:
            pipe.execute()

    # -- turns: recorded once, read back by whoever comes next -----------------------------------

    def reply(self, run_id: str, agent_id: str, attempt: int, turn: int) -> dict | None:
        raw = self.redis.hget(self.keys.replies(run_id, agent_id), f"{attempt}:{turn}")
        return json.loads(raw) if raw else None

    def tool_call_state(self, run_id: str, agent_id: str, attempt: int, turn: int,
                        index: int) -> tuple[dict | None, dict | None]:
        """A tool call's recorded result (None if not yet) and its turn's reply, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.keys.results(run_id, agent_id), f"{attempt}:{turn}:{index}")
        pipe.hget(self.keys.replies(run_id, agent_id), f"{attempt}:{turn}")
        result, reply = pipe.execute()
        return (json.loads(result) if result else None), (json.loads(reply) if reply else None)

    def history(self, run_id: str, agent_id: str, attempt: int, turn: int) -> tuple[list[dict | None], dict[str, dict]]:
        """An attempt's recorded replies for turns 0..`turn` (None where there is none yet) and its tool
        results by "turn:index": what a turn rebuilds its conversation from, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.keys.replies(run_id, agent_id), [f"{attempt}:{t}" for t in range(turn + 1)])
        pipe.hgetall(self.keys.results(run_id, agent_id))  # every call of the agent's attempts: a few dozen
        raws, results = pipe.execute()
        mine = f"{attempt}:"
        return ([json.loads(r) if r else None for r in raws],
                {k.removeprefix(mine): json.loads(v) for k, v in results.items() if k.startswith(mine)})

    def record_result(self, run_id: str, agent_id: str, attempt: int, turn: int, index: int, result: dict,
                      pipe=None) -> bool | None:
        """Store a tool result unless one is there (True if this one was stored); with `pipe`, only queue it."""
        key = self.keys.results(run_id, agent_id)
        own, pipe = pipe is None, pipe or self.redis.pipeline(transaction=False)
        pipe.hsetnx(key, f"{attempt}:{turn}:{index}", json.dumps(result))
        if index == 0:  # every tool turn records an index 0 (run or skipped): the TTL once a turn, not a call
            pipe.expire(key, self.ttl)
        return bool(pipe.execute()[0]) if own else None

    def record_tool_result(self, run_id: str, agent_id: str, attempt: int, turn: int, index: int, result: dict,
                           event: dict[str, Any]) -> bool:
        """`record_result`, and its `tool_result` event (data `event`) only if this result was stored:
        one round trip. After a Redis restart the same call can be running twice, and the ledger must
        show one result."""
        key = self.keys.results(run_id, agent_id)
        args = [f"{attempt}:{turn}:{index}", json.dumps(result), self.ttl if index == 0 else 0]
        return bool(self._guarded_event(self._result_event, key, run_id, agent_id, ("tool_result", event), args))

    def record_call(self, run_id: str, agent_id: str, attempt: int, turn: int, reply: dict, event: dict[str, Any],
                    usage: tuple[int, int, float | None]) -> tuple[str, dict | None]:
        """Store a turn's LLM reply with its usage (input, output tokens, cost) and its `llm_call` event
        (data `event`), in one round trip, unless the run has ended ("ended", None) or a redelivery's
        reply is there already ("lost", that reply); ("won", the stored reply) otherwise."""
        writes = metrics.Ops()
        self.add_usage(run_id, agent_id, *usage, pipe=writes)
        raw = json.dumps(reply)
        args = [f"{attempt}:{turn}", raw, self.ttl if turn == 0 else 0, *TERMINAL_RUN]
        keys = [self.keys.replies(run_id, agent_id), self.keys.run(run_id)]
        found = self._guarded_event(self._reply_event, keys, run_id, agent_id, ("llm_call", event), args, writes)
        if found == -1:
            return "ended", None
        if found == 1:
            return "won", json.loads(raw)  # what was stored, without reading it back
        return "lost", json.loads(found)

    def _guarded_event(self, script, keys: list[str] | str, run_id: str, agent_id: str,
                       event: tuple[str, dict[str, Any]], args: list, writes: "metrics.Ops | None" = None) -> Any:
        """Run a guard script made by `_with_event` (see `_EVENT_PRELUDE`)."""
        type_, data = event
        fields = self._event_fields(type_, agent_id, data)
        writes = writes or metrics.Ops()
        metrics.record(writes, self.keys, type_, agent_id, data)
        keys = [keys] if isinstance(keys, str) else list(keys)
        keys.append(self.keys.events(run_id))
        head: list = [fields["type"], fields["agent"], fields["ts"], fields["data"], len(keys), len(writes.writes)]
        for command, key, name, amount in writes.writes:
            if key not in keys:
                keys.append(key)
            head += [command, keys.index(key) + 1, name, amount]
        found = script(keys=keys, args=head + args)
        found = found if isinstance(found, str) else int(found)
        if found == 1 and writes.deferred:  # the guard wrote: its capped-label metrics too
            pipe = self.redis.pipeline(transaction=False)
            for deferred in writes.deferred:
                pipe.eval(*deferred)
            pipe.execute()
        return found

    def call_index(self, run_id: str, agent_id: str, call_key: str) -> int:
        """A stable index for one LLM call (the same on a redelivery), counting the agent's calls."""
        return int(self._call_index(keys=[self.keys.calls(run_id, agent_id)], args=[call_key, self.ttl]))

    # -- events and failure reports -------------------------------------------------------------

    def event(self, run_id: str, type_: str, agent: str | None = None, *, pipe=None, create: bool = False,
              **data: Any) -> str | None:
        """Append an event (and count it in the metrics); with `pipe`, only queue it there (returns None).
        Only `create_run` creates the stream (`create`, with its TTL): an event for a run that is gone
        (expired, deleted) is dropped rather than left in a stream that would never expire."""
        fields = self._event_fields(type_, agent, data)
        own, pipe = pipe is None, pipe or self.redis.pipeline(transaction=False)
        pipe.xadd(self.keys.events(run_id), fields, nomkstream=not create)
        metrics.record(pipe, self.keys, type_, agent, data)
        return pipe.execute()[0] if own else None

    @staticmethod
    def _event_fields(type_: str, agent: str | None, data: dict[str, Any]) -> dict[str, str]:
        check_event(type_, agent or None, data)
        return {"type": type_, "agent": agent or "", "ts": f"{time.time():.6f}", "data": json.dumps(data, default=str)}

    def events(self, run_id: str, after: str = "0-0", block_ms: int | None = None,
               count: int | None = 500) -> list[dict[str, Any]]:
        if block_ms is None:
            start = "(" + after if after != "0-0" else "-"
            entries: list[tuple[str, dict[str, str]]] = cast(Any, self.redis.xrange(self.keys.events(run_id), min=start,
                                                                                     count=count))
        else:
            found: Any = self.redis.xread({self.keys.events(run_id): after}, block=block_ms, count=count)
            entries = found[0][1] if found else []
        return [_event(entry_id, fields) for entry_id, fields in entries]

    def last_events_at(self, run_ids: list[str]) -> dict[str, float | None]:
        """When each run's newest event was written (its stream id's milliseconds), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.xrevrange(self.keys.events(run_id), count=1)
        return {run_id: int(found[0][0].split("-")[0]) / 1000 if found else None
                for run_id, found in zip(run_ids, pipe.execute())}

    def report_failure(self, report: dict[str, Any]) -> str:
        return _text(self.redis.xadd(self.keys.failures, {"report": json.dumps(report, default=str)},
                                     maxlen=100_000, approximate=True))

    # -- liveness: what each worker holds, and whether it is alive -----------------------------

    def hold(self, task_id: str, name: str, args: list, host: str) -> None:
        record = json.dumps({"name": name, "args": list(args), "host": host, "since": time.time()})
        self.redis.hset(self.keys.inflight, task_id, record)

    def release(self, task_id: str) -> None:
        """The task has finished. Celery acks its message just after, so the message may still sit in
        kombu's `unacked` hash for a moment: the time it finished is kept, so that the supervisor does
        not mistake it for a message whose worker died before recording it."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(self.keys.inflight, task_id)
        pipe.hset(self.keys.released, task_id, time.time())
        pipe.execute()

    def released(self, older_than: float) -> dict[str, float]:
        """When each task was released; entries from before `older_than` are forgotten (their acks
        have long landed, or their worker died before acking, and then they are orphans)."""
        found = {task_id: float(at) for task_id, at in _hash(self.redis.hgetall(self.keys.released)).items()}
        old = [task_id for task_id, at in found.items() if at < older_than]
        if old:
            self.redis.hdel(self.keys.released, *old)
        return {task_id: at for task_id, at in found.items() if at >= older_than}

    def held(self) -> dict[str, dict[str, Any]]:
        return {task_id: json.loads(raw) for task_id, raw in _hash(self.redis.hgetall(self.keys.inflight)).items()}

    def take(self, task_id: str) -> bool:
        """Remove a held record; True for the one caller that removed it."""
        return bool(self.redis.hdel(self.keys.inflight, task_id))

    def beat(self, host: str, ttl: float, queues: list[str] | None = None) -> None:
        """The worker is alive, and consumes from `queues` (None: not said, as from an older worker)."""
        record = json.dumps({"at": time.time(), "queues": queues})
        self.redis.set(self.keys.heartbeat(host), record, px=int(ttl * 1000))

    def live_workers(self) -> dict[str, dict[str, Any]]:
        """Every worker whose heartbeat is fresh: host → {at, queues}."""
        keys = sorted(self.redis.scan_iter(match=self.keys.heartbeat("*"), count=500))
        found = _opt_texts(self.redis.mget(keys)) if keys else []
        prefix = len(self.keys.heartbeat(""))
        workers = {}
        for key, raw in zip(_texts(keys), found):
            if raw is None:
                continue  # expired between the scan and the read
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if not isinstance(record, dict):  # a bare timestamp: queues not said
                record = {"at": float(raw) if raw.replace(".", "", 1).isdigit() else None, "queues": None}
            workers[key[prefix:]] = record
        return workers

    def alive(self, hosts: Iterable[str]) -> set[str]:
        hosts = list(hosts)
        if not hosts:
            return set()
        found = self.redis.mget([self.keys.heartbeat(h) for h in hosts])
        return {h for h, v in zip(hosts, found) if v is not None}

    def decision(self, run_id: str, agent_id: str, attempt: int, proposed: dict) -> tuple[bool, dict]:
        """Record the decision on an attempt's failure once; returns (new, the recorded decision)."""
        key = self.keys.decision(run_id, agent_id, attempt)
        pipe = self.redis.pipeline()
        pipe.set(key, json.dumps(proposed), nx=True, ex=self.ttl)
        pipe.get(key)
        new, stored = pipe.execute()
        return bool(new), json.loads(stored)

    def decision_applied(self, run_id: str, agent_id: str, attempt: int) -> bool:
        return bool(self.redis.exists(self.keys.applied(run_id, agent_id, attempt)))

    def set_decision_applied(self, run_id: str, agent_id: str, attempt: int) -> None:
        self.redis.set(self.keys.applied(run_id, agent_id, attempt), 1, ex=self.ttl)

    def delete_run(self, run_id: str) -> int:
        keys = list(self.redis.scan_iter(match=self.keys.run_pattern(run_id), count=500))
        self.redis.zrem(self.keys.runs, run_id)
        return self.redis.delete(*keys) if keys else 0


def _event(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {"id": entry_id, "type": fields.get("type", ""), "agent": fields.get("agent") or None,
            "ts": float(fields.get("ts", 0)), **json.loads(fields.get("data") or "{}")}


# The client decodes responses (decode_responses=True), so redis-py's `bytes | str` results are str here:
# these say so at the boundary, with no change at run time.
def _text(value: Any) -> str:
    return cast(str, value)


def _opt_text(value: Any) -> str | None:
    return cast("str | None", value)


def _texts(values: Any) -> list[str]:
    return cast("list[str]", values)


def _opt_texts(values: Any) -> list[str | None]:
    return cast("list[str | None]", values)


def _text_set(values: Any) -> set[str]:
    return cast("set[str]", values)


def _hash(value: Any) -> dict[str, str]:
    return cast("dict[str, str]", value)


def _flat(fields: dict[str, Any]) -> dict[EncodableT, Any]:
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v)
            for k, v in fields.items()}


@lru_cache(maxsize=256)
def _cached_spec_raw(ledger_id: int, client: redis.Redis, key: str) -> RunSpec | None:
    raw = client.get(key)
    return RunSpec.from_json(raw) if raw else None


def _cached_spec(ledger: Ledger, run_id: str) -> RunSpec:
    # A spec never changes after submission, so each process parses it once.
    spec = _cached_spec_raw(id(ledger.redis), ledger.redis, ledger.keys.spec(run_id))
    if spec is None:
        _cached_spec_raw.cache_clear()
        raise LookupError(f"run {run_id} not found (unknown, or expired after the retention period)")
    return spec
