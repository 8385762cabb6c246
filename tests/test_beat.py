"""Schedules in crew files, and `crewq beat` turning them into runs."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from celery.schedules import crontab
from click.testing import CliRunner

from crewq.config.errors import ConfigError
from crewq.config.loader import load_crew_text
from crewq.scheduler import beat
from crewq.scheduler.cli import main
from crewq.scheduler.runs import Client
from crewq.workers.ledger.state import RunState

from helpers import write_crew

SCHEDULED = """
    runtime: {name: ticker, llm_provider: scripted}
    task: {input: "Brief on {topic}"}
    schedule: {every: 2s, inputs: {topic: tides}}
    tools: [{name: read_file, base_dir: notes}]
    agents:
      - id: reader
        tools: [read_file]
        script:
          - {tool_calls: [{name: read_file, arguments: {path: n.md}}]}
          - {text: "read: {tool_results}; asked: {input}"}
    """


def crew_with(schedule: str):
    return load_crew_text("agents: [{id: a}]\n" + schedule)


@pytest.mark.parametrize("text, expected", [
    ("schedule: {cron: '*/15 * * * *'}", ("*/15 * * * *", None)),
    ("schedule: {cron: '@daily', inputs: {topic: x}}", ("@daily", None)),
    ("schedule: {every: 90s}", (None, 90.0)),
    ("schedule: {every: 1h30m}", (None, 5400.0)),
])
def test_a_schedule_is_a_cron_or_an_interval(text, expected):
    schedule = crew_with(text).crew.schedule
    assert (schedule.cron, schedule.every) == expected


@pytest.mark.parametrize("text, message", [
    ("schedule: {cron: '61 * * * *'}", "schedule.cron: invalid cron expression"),
    ("schedule: {cron: '0 9 * *'}", "five fields"),
    ("schedule: {cron: '0 9 * * someday'}", "invalid cron expression"),
    ("schedule: {}", "exactly one of cron and every"),
    ("schedule: {cron: '@daily', every: 1m}", "exactly one of cron and every"),
    ("schedule: {every: 0s}", "schedule.every"),
    ("schedule: {every: 1m, when: now}", "schedule.when"),
])
def test_a_bad_schedule_is_named(text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        crew_with(text)


def test_cron_fields_are_in_the_usual_order():
    when = beat.celery_schedule(crew_with("schedule: {cron: '5 7 1 2 mon'}").crew.schedule)
    assert isinstance(when, crontab)
    assert (when.minute, when.hour, when.day_of_month, when.month_of_year, when.day_of_week) == \
        ({5}, {7}, {1}, {2}, {1})


def test_load_schedules_finds_scheduled_crews_and_names_broken_ones(tmp_path):
    write_crew(tmp_path, SCHEDULED, "ticker.yaml")
    (tmp_path / "team").mkdir()
    write_crew(tmp_path / "team", "schedule: {cron: '0 7 * * mon-fri'}\nagents: [{id: a}]\n", "daily.yml")
    write_crew(tmp_path, "agents: [{id: a}]\n", "unscheduled.yaml")
    write_crew(tmp_path, "agents: [{id: a, depends_on: [nobody]}]\nschedule: {every: 1s}\n", "broken.yaml")
    (tmp_path / ".hidden").mkdir()
    write_crew(tmp_path / ".hidden", SCHEDULED, "x.yaml")

    entries, problems = beat.load_schedules(tmp_path, "crewq.control")
    assert sorted(entries) == ["crew:team/daily.yml", "crew:ticker.yaml"]
    tick = entries["crew:ticker.yaml"]
    assert tick["task"] == "crewq.submit" and tick["schedule"] == timedelta(seconds=2)
    assert "Brief on {topic}" in tick["args"][0]  # by value: the YAML text itself
    assert tick["kwargs"] == {"inputs": {"topic": "tides"}}
    assert tick["options"]["queue"] == "crewq.control"
    assert beat.explain(tick) == "every 2s with topic=tides"
    assert beat.explain(entries["crew:team/daily.yml"]) == "cron '0 7 * * mon-fri'"
    assert len(problems) == 1 and "broken.yaml" in problems[0] and "nobody" in problems[0]


def test_beat_list_needs_no_redis(tmp_path, monkeypatch):
    monkeypatch.delenv("CREWQ_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    write_crew(tmp_path, SCHEDULED, "ticker.yaml")
    result = CliRunner().invoke(main, ["beat", "--list"], env={"CREWQ_CREWS_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "crew:ticker.yaml  every 2s with topic=tides" in result.output


def test_beat_without_a_crews_folder_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["beat", "--list", "--crews-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


def wait_for_run(client: Client, name: str, timeout: float = 30) -> RunState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_id in client.ledger.recent_runs():
            run = client.ledger.run(run_id)
            if run.get("name") == name:
                return client.wait(run_id, timeout=max(deadline - time.monotonic(), 1))
        time.sleep(0.05)  # polling the run index: submission leaves no other trace to wait on
    raise AssertionError(f"no run of {name} within {timeout}s")


def test_a_firing_submits_the_crew_file_with_its_inputs(worker, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n.md").write_text("high water at noon", encoding="utf-8")
    write_crew(tmp_path, SCHEDULED, "ticker.yaml")
    assert beat.configure(worker, tmp_path) == []
    ledger = worker.ledger
    broken = json.dumps({"last_run_at": "2026-01-01T07:00:00+00:00", "total_run_count": 9})
    ledger.redis.hset(ledger.keys.beat, "crew:broken.yaml", broken)  # a crew that does not load right now
    scheduler = beat.CrewScheduler(app=worker, lazy=False)
    try:
        for count in (1, 2):
            result = scheduler.apply_async(scheduler.schedule["crew:ticker.yaml"], advance=True)
            status = Client(worker).wait(result.id, timeout=30)
            # Written at each firing, not only at a clean close: a killed beat does not fire it again.
            assert json.loads(ledger.redis.hget(ledger.keys.beat, "crew:ticker.yaml"))["total_run_count"] == count
        fired = scheduler.schedule["crew:ticker.yaml"]
        assert fired.total_run_count == 2
    finally:
        scheduler.close()
    # relative paths start at the crew file's folder, the inputs fill the task
    assert status.output == "read: high water at noon; asked: Task:\nBrief on tides"
    # When it fired is in Redis as JSON (no shelve file), and a restarted beat picks it up.
    stored = json.loads(ledger.redis.hget(ledger.keys.beat, "crew:ticker.yaml"))
    assert stored == {"last_run_at": fired.last_run_at.isoformat(), "total_run_count": 2}
    assert not list(tmp_path.glob("*beat*"))
    restarted = beat.CrewScheduler(app=worker, lazy=False)
    again = restarted.schedule["crew:ticker.yaml"]
    assert (again.last_run_at, again.total_run_count) == (fired.last_run_at, 2)
    restarted.close()
    assert ledger.redis.hget(ledger.keys.beat, "crew:broken.yaml") == broken  # kept for when it is fixed


def test_plain_celery_beat_entries_submit_by_value(worker, tmp_path):
    write_crew(tmp_path, SCHEDULED.replace("tools: [{name: read_file, base_dir: notes}]", "")
               .replace("tools: [read_file]", "").replace(
                   "- {tool_calls: [{name: read_file, arguments: {path: n.md}}]}", ""), "ticker.yaml")
    entries, _ = beat.load_schedules(tmp_path)
    entry = entries["crew:ticker.yaml"]
    worker.send_task(entry["task"], args=entry["args"], kwargs=entry["kwargs"], queue=entry["options"]["queue"])
    status = wait_for_run(Client(worker), "ticker")
    assert status.output == "read: ; asked: Task:\nBrief on tides"


def test_any_beat_of_the_app_keeps_its_state_as_json_not_in_a_shelve(worker):
    # `celery -A crewq.workers.celery_app beat` as much as `crewq beat`: Celery's default scheduler keeps
    # its state in a shelve file (its `persistence` attribute), not JSON.
    from celery.beat import Service
    command_line_beat = worker.Beat()
    scheduler = Service(worker, scheduler_cls=command_line_beat.scheduler_cls).get_scheduler(lazy=True)
    assert type(scheduler) is beat.CrewScheduler and not hasattr(scheduler, "persistence")
