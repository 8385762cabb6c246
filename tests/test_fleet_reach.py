"""`crewq worker`, `supervisor` and `beat` when their Redis is malformed or not up yet, as processes:
a malformed URL is one line and exit 3; a Redis that is late is waited for, one line per attempt,
no traceback, and the service starts once Redis answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import redis
from test_serving import Lines

from crewq.config.settings import Settings
from crewq.workers.app import create_app

from conftest import FAST_ENV, HOST, ROOT, RestartableRedis
from helpers import write_crew

SERVICES = {
    "worker": ["worker", "-n", f"late@{HOST}", "-c", "2"],
    "supervisor": ["supervisor", "--name", "late-sup"],
    "beat": ["beat", "--crews-dir", "CREWS"],
}
TICKER = "runtime: {llm_provider: scripted}\nschedule: {every: 1s}\nagents:\n  - {id: a, script: [{text: tick}]}\n"


def service(name: str, url: str, crews) -> subprocess.Popen:
    args = [str(crews) if a == "CREWS" else a for a in SERVICES[name]]
    return subprocess.Popen([sys.executable, "-m", "crewq", *args], cwd=ROOT, text=True,
                            env={**os.environ, "CREWQ_REDIS_URL": url, **FAST_ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_malformed_url_is_one_line_and_exit_3(name, tmp_path):
    proc = service(name, "admin:s3cret-pw@localhost:6379", tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert err == ("crewq: error: malformed Redis URL admin:***@localhost:6379: it must start with redis://, "
                   "rediss:// or unix://\n")


def started(name: str, url: str, lines: Lines) -> bool:
    """The service is up on Redis: the worker answers a ping, the supervisor leads, beat submitted a run."""
    app = create_app(Settings(redis_url=url))
    try:
        if name == "worker":
            lines.wait_for(f"late@{HOST} ready.")
            return bool(app.control.ping(destination=[f"late@{HOST}"], timeout=10))
        if name == "supervisor":
            lines.wait_for("supervisor late-sup is active")
            return redis.Redis.from_url(url).get(app.ledger.keys.leader) is not None
        lines.wait_for("beat: crew:ticker.yaml submitted run")
        return True
    finally:
        app.close()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_waits_for_a_late_redis_then_starts(name, tmp_path):
    crews = tmp_path / "crews"
    crews.mkdir()
    write_crew(crews, TICKER, "ticker.yaml")
    late = RestartableRedis(tmp_path)  # its port is chosen; nothing listens on it yet
    proc = service(name, late.url, crews)
    lines = Lines(proc)
    try:
        lines.wait_for(f"crewq {name}: cannot reach the fleet's Redis at {late.url} (Error 111 connecting to "
                       f"127.0.0.1:{late.port}. Connection refused.); waiting for it")
        lines.wait_for(f"crewq {name}: Redis still unreachable (attempt 2)")
        late.start()
        lines.wait_for(f"crewq {name}: reached the fleet's Redis at {late.url} after")
        assert started(name, late.url, lines)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        err = lines.rest()
        late.stop(signal.SIGKILL)
    assert "Traceback" not in err, err
