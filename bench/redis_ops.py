"""Benchmark: Redis commands per LLM call, crewq beside bare Celery on the same canvas.

The waves crew (4 waves x 2 agents, 2 scripted LLM calls of 200 ms each, one `list_files` call
between them: 16 LLM calls) runs on an in-process worker; `bench/floor.py`'s bare Celery tasks of
the same shape (no ledger) run on the same worker, interleaved with it. Around each run the bench
resets Redis's `INFO commandstats` and reads it back: every command of the run is counted
(submission, worker, broker, results, heartbeats), except the bench's own waiting (subtracted).
Commands a Lua script runs count too: a script saves round trips, not commands. So the bench also
counts round trips: everything runs in this one process, so each packet redis-py sends (a command,
a pipeline, a script call) is one. Target: <= 30 commands per LLM call; what crewq can cut is its
share above bare Celery's.

    .venv/bin/python bench/redis_ops.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import floor  # noqa: E402
import redis  # noqa: E402
from waves import LATENCY, TURNS, WAVES, WIDTH, crew_yaml  # noqa: E402

from crewq.config.loader import load_crew_text  # noqa: E402
from crewq.config.policy import Policy  # noqa: E402
from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.embedded import in_process_worker  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis  # noqa: E402
from crewq.scheduler.runs import submit_loaded  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

LLM_CALLS = WAVES * WIDTH * TURNS
IGNORED = {"config", "info"}  # the bench's own RESETSTAT and INFO
TRIPS = "round trips"


class RoundTrips:
    """Counts every packet redis-py sends from this process (worker, broker, results, client)."""

    def __init__(self) -> None:
        self.count, self.lock = 0, threading.Lock()
        from redis.connection import AbstractConnection

        send = AbstractConnection.send_packed_command

        def counted(conn, *args, **kwargs):
            with self.lock:
                self.count += 1
            return send(conn, *args, **kwargs)

        AbstractConnection.send_packed_command = counted

    def reset(self) -> None:
        with self.lock:
            self.count = 0


TRIP_COUNTER = RoundTrips()


def commandstats(r: redis.Redis) -> Counter:
    found = Counter()
    for name, stats in r.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command.split("|")[0] not in IGNORED:
            found[command.upper()] = int(stats["calls"])
    return found


def crewq_run(app, folder: str, r: redis.Redis) -> Counter:
    loaded = load_crew_text(crew_yaml(), str(Path(folder) / "bench.yaml"))
    r.config_resetstat()
    TRIP_COUNTER.reset()
    run_id = submit_loaded(app, loaded)
    key, after, mine = app.ledger.keys.events(run_id), "0-0", 0
    while True:  # wait on the event stream, counting our own XREADs to take them off
        found = r.xread({key: after}, block=60_000)
        mine += 1
        if not found:
            raise SystemExit(f"run {run_id}: no event for 60 s")
        entries = found[0][1]
        after = entries[-1][0]
        if any(fields.get("type") == "run_finished" for _, fields in entries):
            break
    trips = TRIP_COUNTER.count - mine - 1  # the XREADs and the INFO
    counts = commandstats(r)
    counts["XREAD"] -= mine
    counts[TRIPS] = trips
    status = r.hget(app.ledger.keys.run(run_id), "status")
    if status != "succeeded":
        raise SystemExit(f"run {run_id} ended {status}")
    return +counts


def bare_run(app, r: redis.Redis) -> Counter:
    r.config_resetstat()
    TRIP_COUNTER.reset()
    floor.run_once(app, WIDTH)
    trips = TRIP_COUNTER.count - 2  # the BLPOP and the INFO
    counts = commandstats(r)
    counts["BLPOP"] -= 1
    counts[TRIPS] = trips
    return +counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    with LocalRedis() as server, tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(redis_url=server.url, policy=Policy.trusted()))  # as bench/waves.py
        floor.install(app, WAVES, WIDTH, latency=LATENCY, stamp=False)
        r = redis.Redis.from_url(server.url, decode_responses=True)
        with in_process_worker(app, concurrency=16):
            crewq_run(app, folder, r), bare_run(app, r)  # warm-up: imports, connections, scripts
            crewq, bare = [], []
            for _ in range(args.repeat):  # interleaved: both see the same machine
                crewq.append(crewq_run(app, folder, r))
                bare.append(bare_run(app, r))
        app.close()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); {WAVES} waves x {WIDTH} agents, {LLM_CALLS} LLM calls a run, "
          f"median of {args.repeat} runs each")
    names = sorted(set().union(*crewq, *bare) - {TRIPS}, key=lambda c: -statistics.median(x[c] for x in crewq))
    print(f"{'command':<16}{'crewq/call':>12}{'bare/call':>12}")
    for name in names[:args.top]:
        c = statistics.median(x[name] for x in crewq) / LLM_CALLS
        b = statistics.median(x[name] for x in bare) / LLM_CALLS
        print(f"{name:<16}{c:>12.2f}{b:>12.2f}")
    total_c = statistics.median(sum(x.values()) - x[TRIPS] for x in crewq)
    total_b = statistics.median(sum(x.values()) - x[TRIPS] for x in bare)
    trips_c, trips_b = (statistics.median(x[TRIPS] for x in runs) for runs in (crewq, bare))
    print(f"total per run: crewq {total_c:.0f}, bare Celery {total_b:.0f}")
    print(f"round trips per LLM call: crewq {trips_c / LLM_CALLS:.1f}, bare Celery {trips_b / LLM_CALLS:.1f}; "
          f"crewq's share above bare Celery: {(trips_c - trips_b) / LLM_CALLS:.1f}")
    print(f"crewq's share of commands above bare Celery's: {(total_c - total_b) / LLM_CALLS:.1f} per LLM call")
    print(f"Redis commands per LLM call: crewq {total_c / LLM_CALLS:.1f}, bare Celery {total_b / LLM_CALLS:.1f}, "
          f"ratio {total_c / total_b:.2f} (target <= 30 per call)")


if __name__ == "__main__":
    main()
