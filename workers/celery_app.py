"""A module-level app for Celery's own command lines: `celery -A crewq.workers.celery_app worker`.

Importing this module reads the environment and needs CREWQ_REDIS_URL (or REDIS_URL).
"""

from .app import create_app

app = create_app()
# The command line's app is this process's current one: Flower's result API (GET /api/task/result/ID)
# builds AsyncResult(id) without an app, and would otherwise find no result backend.
app.set_current()
