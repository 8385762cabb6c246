"""Cron and interval schedules of crews: `crewq beat` is Celery beat over every crew under a folder.

A crew file carries its own schedule:

    schedule:
      cron: "0 7 * * mon-fri"      # or: every: 15m
      inputs: {topic: tides}

`crewq beat` (one per fleet) finds every crew with a `schedule:` under CREWQ_CREWS_DIR and, at each
firing, submits a run by value: the file is read again and validated, stored in Redis under a new
run id, and its first wave emitted, exactly as `crewq submit FILE -i ...` does. Relative paths in
the crew (tools' base_dir, env_file) start at the crew file's folder, so workers that run its tools
see the crews folder at the same path (one shared volume in docker-compose.yml).

Each entry is also a plain Celery beat entry sending `crewq.submit` with the crew's YAML text, so
an entry copied into another app's `beat_schedule` still submits (relative paths then start at the
worker's folder).

When each schedule last fired is kept in Redis as JSON (`{prefix}:beat`), not in Celery's default
shelve file (a binary, non-JSON format; crewq reads and writes JSON only). Beat then needs no volume of its own,
and a beat restarted on another machine knows which firings it missed.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from celery.beat import Scheduler, SchedulingError
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from crewq.config.errors import ConfigError
from crewq.config.loader import load_crew
from crewq.config.schema import Schedule, parse_cron
from crewq.workers.app import SUBMIT_TASK, CrewqApp

log = logging.getLogger(__name__)

CREW_FILE_OPTION = "crewq_crew_file"
SUFFIXES = (".yaml", ".yml")


def celery_schedule(schedule: Schedule):
    return parse_cron(schedule.cron) if schedule.cron is not None else timedelta(seconds=cast(float, schedule.every))


def describe(schedule: Schedule) -> str:
    when = f"cron {schedule.cron!r}" if schedule.cron is not None else f"every {schedule.every:g}s"
    inputs = " ".join(f"{k}={v}" for k, v in schedule.inputs.items())
    return when + (f" with {inputs}" if inputs else "")


def explain(entry: dict[str, Any]) -> str:
    """One line for an entry of `load_schedules`: when, and with which inputs."""
    when = entry["schedule"]
    text = f"every {when.total_seconds():g}s" if isinstance(when, timedelta) else (
        f"cron '{when._orig_minute} {when._orig_hour} {when._orig_day_of_month} {when._orig_month_of_year} "
        f"{when._orig_day_of_week}'")
    inputs = " ".join(f"{k}={v}" for k, v in entry["kwargs"]["inputs"].items())
    return text + (f" with {inputs}" if inputs else "")


def crew_files(crews_dir: str | Path) -> list[Path]:
    """Crew files under the folder (recursively), hidden folders left out, in a stable order."""
    root = Path(crews_dir)
    if not root.is_dir():
        raise ConfigError(f"crews folder {str(root)!r} does not exist (set CREWQ_CREWS_DIR or --crews-dir)")
    return sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def load_schedules(crews_dir: str | Path, queue: str = "crewq.control") -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Beat entries for every scheduled crew under the folder, and one problem line per file that
    could not be loaded (a broken crew must not stop the schedules of the others)."""
    entries, problems = {}, []
    root = Path(crews_dir)
    for path in crew_files(root):
        try:
            loaded = load_crew(path)
        except ConfigError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        schedule = loaded.crew.schedule
        if schedule is None:
            continue
        name = f"crew:{path.relative_to(root).as_posix()}"
        entries[name] = {
            "task": SUBMIT_TASK,
            "schedule": celery_schedule(schedule),
            "args": (path.read_text(encoding="utf-8"),),
            "kwargs": {"inputs": dict(schedule.inputs)},
            "options": {"queue": queue, CREW_FILE_OPTION: str(path.resolve())},
            "relative": False,
        }
        log.info("beat: %s %s", name, describe(schedule))
    return entries, problems


class CrewScheduler(Scheduler):
    """Celery's scheduler with its state in Redis; an entry that names a crew file submits that file."""

    def __init__(self, *args, **kwargs):
        # One write per firing (cheap), so a beat killed right after a firing does not repeat it.
        # A keyword, not a class attribute: Celery's __init__ sets it from beat_sync_every (0).
        kwargs.setdefault("sync_every_tasks", 1)
        super().__init__(*args, **kwargs)

    def setup_schedule(self):
        super().setup_schedule()
        redis, key = self._store()
        for name, raw in redis.hgetall(key).items():
            entry = self.data.get(name)
            if entry is None:
                continue
            stored = json.loads(raw)
            entry.last_run_at = datetime.fromisoformat(stored["last_run_at"])
            entry.total_run_count = int(stored["total_run_count"])

    def sync(self):
        # Entries are only ever added or updated: a crew that failed to load while beat restarted
        # keeps its last firing for when it is fixed (a removed crew leaves one small field behind).
        redis, key = self._store()
        state = {name: json.dumps({"last_run_at": entry.last_run_at.isoformat(),
                                   "total_run_count": entry.total_run_count})
                 for name, entry in self.data.items() if entry.last_run_at is not None}
        if state:
            try:
                redis.hset(key, mapping=state)
            except RedisConnectionError as exc:  # beat stays up through a Redis restart; saved next time
                log.warning("beat: the schedule's state is not saved, Redis is unreachable (%s)", exc)

    def _store(self):
        ledger = self.app.ledger
        return ledger.redis, ledger.keys.beat

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        try:
            return self._submit(entry, producer, advance, **kwargs)
        except (RedisConnectionError, OperationalError) as exc:
            # Redis is restarting: one line, not Celery's stack and traceback for every firing. This
            # firing is skipped; the next one (after Redis is back) submits.
            log.warning("beat: %s not submitted, Redis is unreachable (%s); the next firing tries again",
                        entry.name, exc)
            return SimpleNamespace(id=None)

    def _submit(self, entry, producer=None, advance=True, **kwargs):
        crew_file = (entry.options or {}).get(CREW_FILE_OPTION)
        if not crew_file:
            return super().apply_async(entry, producer, advance, **kwargs)
        from .runs import submit_loaded
        from .validate import check

        entry = self.reserve(entry) if advance else entry
        try:
            loaded, _ = check(crew_file)  # read again: an edited crew is submitted as it is now
            run_id = submit_loaded(self.app, loaded, (entry.kwargs or {}).get("inputs") or {})
        except (RedisConnectionError, OperationalError):
            raise
        except Exception as exc:  # Celery's apply_entry logs it; the next firing tries again
            raise SchedulingError(f"couldn't submit {entry.name}: {exc}") from exc
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()
        log.info("beat: %s submitted run %s", entry.name, run_id)
        return SimpleNamespace(id=run_id)


def configure(app: CrewqApp, crews_dir: str | Path) -> list[str]:
    """Put the crews' schedules on the app (`beat_schedule`); returns the problems found."""
    entries, problems = load_schedules(crews_dir, app.settings.queues.control)
    app.conf.beat_schedule = entries
    return problems
