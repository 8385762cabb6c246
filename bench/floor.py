"""Celery's floor: the waves crew's exact canvas shape with no-op tasks and no ledger, for the benches.

Registered on crewq's own app and served by the same in-process worker, so that a bench measures
crewq beside bare Celery in the same run, through the same worker setup and the same Redis:

    wave n   = chord(group(bare_turn(n, a, 0) for a), bare_advance(n))
    turn 0   = replace(chord(group(bare_tool()), bare_turn(n, a, 1)))   # as agent_turn with a tool call
    turn 1   = returns                                                   # the agent's final answer
    advance  = the next wave, or LPUSH of the run's id on `done_key` (the client BLPOPs it)

Every task writes its start time to a Redis hash (`{run}:t`, HSET), so the hop bench can read the
same hops as from crewq's event timestamps; `stamp=False` skips it for command counts.
"""

from __future__ import annotations

import time
import uuid

from celery import Celery, chord, group

TURN, TOOL, ADVANCE = "bench.bare_turn", "bench.bare_tool", "bench.bare_advance"


def install(app: Celery, waves: int, width: int, latency: float = 0.0, tools: int = 1, stamp: bool = True,
            tool_latency: float = 0.0) -> None:
    """Register the bare tasks on `app`, routed to crewq's queues (turns, tools, control)."""
    import redis

    q = app.settings.queues
    app.conf.task_routes = {**app.conf.task_routes, TURN: {"queue": q.turns}, TOOL: {"queue": q.tools},
                            ADVANCE: {"queue": q.control}}
    r = redis.Redis.from_url(app.settings.redis_url, decode_responses=True)

    def mark(run: str, what: str) -> None:
        if stamp:
            r.hset(f"bare:{run}:t", what, time.time())

    @app.task(name=TURN, bind=True)
    def bare_turn(self, run: str, wave: int, agent: int, turn: int):
        mark(run, f"turn:{wave}:{agent}:{turn}")
        if latency:
            time.sleep(latency)
        mark(run, f"reply:{wave}:{agent}:{turn}")
        if turn == 0:
            calls = group(app.signature(TOOL, args=(run, wave, agent, i), immutable=True) for i in range(tools))
            return self.replace(chord(calls, app.signature(TURN, args=(run, wave, agent, 1), immutable=True)))
        return {"status": "ok"}

    @app.task(name=TOOL)
    def bare_tool(run: str, wave: int, agent: int, index: int):
        mark(run, f"tool:{wave}:{agent}:{index}")
        if tool_latency:
            time.sleep(tool_latency)
        return {"index": index}

    @app.task(name=ADVANCE)
    def bare_advance(results, run: str, wave: int):
        mark(run, f"advance:{wave}")
        if wave + 1 < waves:
            emit(app, run, wave + 1, width)
        else:
            r.lpush(f"bare:{run}:done", 1)


def emit(app: Celery, run: str, wave: int, width: int) -> None:
    header = group(app.signature(TURN, args=(run, wave, a, 0), immutable=True) for a in range(width))
    chord(header, app.signature(ADVANCE, args=(run, wave))).apply_async()


def run_once(app: Celery, width: int, timeout: float = 120) -> tuple[str, float]:
    """One bare run; returns (its id, wall seconds from emitting wave 0 to the last advance)."""
    import redis

    r = redis.Redis.from_url(app.settings.redis_url, decode_responses=True)
    run = uuid.uuid4().hex[:12]
    began = time.perf_counter()
    emit(app, run, 0, width)
    if r.blpop([f"bare:{run}:done"], timeout=timeout) is None:
        raise SystemExit(f"bare run {run} did not finish in {timeout:g}s")
    return run, time.perf_counter() - began


def stamps(app: Celery, run: str) -> dict[str, float]:
    import redis

    r = redis.Redis.from_url(app.settings.redis_url, decode_responses=True)
    return {k: float(v) for k, v in r.hgetall(f"bare:{run}:t").items()}
