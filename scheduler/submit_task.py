"""`crewq.submit`: a task any Celery app (or Flower's HTTP API) can send to start a run by value.

    celery_app.send_task("crewq.submit", args=[crew_yaml_text], kwargs={"inputs": {"topic": "x"}})
"""

from __future__ import annotations

from celery import shared_task

from crewq.config.loader import load_crew_text
from crewq.workers.app import SUBMIT_TASK

from . import submission
from .runs import submit_loaded


@shared_task(name=SUBMIT_TASK, bind=True)
def submit_crew(self, crew_yaml: str, inputs: dict | None = None, task: str | None = None) -> str:
    """Validate the crew YAML and start a run; returns the run id (ConfigError names the problem).
    Anyone who can send a task can send this one: every argument is checked before it is used."""
    limits = self.app.settings.policy.limits
    submission.check_inputs(inputs, task, limits)
    loaded = load_crew_text(submission.check_crew_text(crew_yaml), "<submitted crew>", limits)
    return submit_loaded(self.app, loaded, inputs, task)
