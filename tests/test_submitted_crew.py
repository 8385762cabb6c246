"""A crew sent as text (`crewq.submit`, Flower, `Client.submit(text)`) has no folder: the worker never
reads a .env for it (its own folder's least of all), and its relative paths have no base."""

from __future__ import annotations

import pytest
from celery import Celery

from crewq.config.errors import ConfigError
from crewq.config.loader import load_crew_text
from crewq.workers.app import SUBMIT_TASK

from helpers import follow

SECRET = "worker-dotenv-secret-0123456789"


@pytest.fixture
def sender(worker, redis_url, tmp_path, monkeypatch):
    """A Celery app that knows only the broker, and a worker whose folder holds a .env and a file."""
    (tmp_path / ".env").write_text(f"CREWQ_T_DOTENV={SECRET}\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text(f"the worker's own {SECRET}", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the in-process worker's cwd
    other = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)
    other.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
    yield lambda text: other.send_task(SUBMIT_TASK, args=[text], queue="crewq.control").get(timeout=30)
    other.close()


def test_a_submitted_crews_env_file_is_refused_not_read_from_the_workers_folder(sender):
    text = """
        runtime: {llm_provider: scripted, env_file: .env}
        agents: [{id: a, goal: "env:CREWQ_T_DOTENV", script: [{text: "{goal}"}]}]
        """
    with pytest.raises(Exception) as info:
        sender(text)
    assert "runtime.env_file" in str(info.value) and "no folder" in str(info.value), str(info.value)
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError, match="runtime.env_file: a crew sent as text has no folder"):
        load_crew_text(text)  # Client.submit(text) loads it the same way


def test_a_submitted_crews_relative_base_dir_has_no_base(app, sender):
    run_id = sender("""
        runtime: {llm_provider: scripted}
        tools: [{name: read_file}]
        agents:
          - id: a
            tools: [read_file]
            script:
              - tool_calls: [{name: read_file, arguments: {path: notes.txt}}]
              - text: "read {tool_results}"
        """)
    status = follow(app, run_id)
    assert app.ledger.spec(run_id).source_dir is None and app.ledger.spec(run_id).source_file is None
    assert status.status == "failed", status
    error = status.agents["a"].error or ""
    assert "tools.read_file.base_dir" in error and "no folder" in error, error
    assert SECRET not in str(status)
