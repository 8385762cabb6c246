"""The fleet of docker-compose.yml, without Docker: each service's own command and environment, run
as a local process against a private Redis started with the compose file's redis command.

A crew is submitted through Flower's HTTP API (as any language would), a crew file's `schedule:`
makes beat start runs, Flower lists the workers and serves /metrics, the supervisor serves crewq's
metrics, the healthchecks pass, and everything stops on SIGTERM (the workers by Celery's soft/cold
shutdown, REMAP_SIGTERM=SIGQUIT). The compose file itself is checked by `docker-compose config`
when that binary is here, and by its structure always.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

from crewq.config.settings import Settings
from crewq.scheduler.local_redis import find_redis_server, free_port
from crewq.scheduler.runs import Client
from crewq.workers.app import create_app

from conftest import FAST_ENV, ROOT  # FAST_ENV: the supervisor's short clocks

COMPOSE = ROOT / "docker-compose.yml"
HOST = socket.gethostname()
VENV_BIN = str(Path(sys.executable).parent)
SERVICES = {"redis", "worker-llm", "worker-tools", "supervisor", "beat", "flower"}
ENV = {"REDIS_PASSWORD": "pw-3f9c2a71", "FLOWER_USER": "admin", "FLOWER_PASSWORD": "fl-8d1e44",
       "CREWQ_LLM_CONCURRENCY": "8", "CREWQ_TOOLS_CONCURRENCY": "4", "CREWQ_LOG_FORMAT": "json"}

TICKER = """
runtime: {name: ticker, llm_provider: scripted}
task: {input: "Tide report for {harbour}"}
schedule: {every: 1s, inputs: {harbour: Brest}}
agents:
  - id: reporter
    script: [{text: "high water at noon"}]
"""

SUBMITTED = """
runtime: {name: via-flower, llm_provider: scripted}
task: {input: "Explain {topic}"}
agents:
  - id: researcher
    script: [{latency: 0.1s, text: "facts about {input}"}]
  - id: writer
    depends_on: [researcher]
    script: [{text: "an explainer"}]
"""


# -- the compose file, as compose reads it -------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*)|(:?\?)([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution: ${V}, ${V:-default}, ${V-default}, ${V:?error}, and $$ for $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match):
        if match.group(0) == "$$":
            return "$"
        name, dash, default, question, error = match.groups()
        found = env.get(name)
        if dash:
            return default if (found is None or (dash == ":-" and found == "")) else found
        if question and (found is None or (question == ":?" and found == "")):
            raise KeyError(f"{name}: {error}")
        return found or ""

    return _VAR.sub(one, value)


def load_compose(env: dict[str, str]) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), env)


def test_compose_file_structure():
    compose = load_compose(ENV)
    services = compose["services"]
    assert set(services) == SERVICES

    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis_cmd[redis_cmd.index("--requirepass") + 1] == ENV["REDIS_PASSWORD"]

    llm, tools = services["worker-llm"], services["worker-tools"]
    assert llm["command"][:2] == ["crewq", "worker"]
    assert llm["command"][llm["command"].index("-Q") + 1] == "crewq.turns"
    assert llm["command"][llm["command"].index("-P") + 1] == "threads"
    assert int(llm["command"][llm["command"].index("-c") + 1]) >= 8
    assert set(tools["command"][tools["command"].index("-Q") + 1].split(",")) == {"crewq.tools", "crewq.control"}
    for worker in (llm, tools):
        assert worker["environment"]["REMAP_SIGTERM"] == "SIGQUIT"
        assert "container_name" not in worker and "ports" not in worker  # `--scale worker-llm=4` works
    assert services["supervisor"]["command"][:2] == ["crewq", "supervisor"]
    assert services["beat"]["command"][:2] == ["crewq", "beat"]
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:fl-8d1e44"

    for name, service in services.items():
        if name != "redis":
            env = service["environment"]
            assert env["CREWQ_REDIS_URL"] == f"redis://:{ENV['REDIS_PASSWORD']}@redis:6379/0"
            assert service["depends_on"]["redis"]["condition"] == "service_healthy"
            # the policy file it is told to read is mounted (beat's own volumes list once dropped it)
            mounts = [v.split(":")[1] for v in service["volumes"]]
            assert env["CREWQ_POLICY"] in mounts, (name, mounts)
        if name != "beat":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    shared = {v.split(":")[0] for s in ("worker-llm", "worker-tools") for v in services[s]["volumes"]}
    assert "outputs" in shared and "outputs" in compose["volumes"]

    # no secret is written in the file: every one comes from the environment
    raw = COMPOSE.read_text(encoding="utf-8")
    assert "${REDIS_PASSWORD:?" in raw and "${FLOWER_PASSWORD:?" in raw
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        load_compose({})

    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^USER crewq$", dockerfile, re.M) and "pip install ." in dockerfile
    assert "-slim" in dockerfile


@pytest.mark.slow
def test_compose_config_validates():
    """`docker-compose config` (Debian's docker-compose 1.29) or the `docker compose` plugin, if either is here."""
    env = {**os.environ, **ENV}
    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", str(COMPOSE), "config", "-q"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose", "-f", str(COMPOSE), "config", "-q"]
    else:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(command, env={k: v for k, v in env.items() if k != "REDIS_PASSWORD"},
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert missing.returncode != 0 and "REDIS_PASSWORD" in missing.stderr


# -- the fleet, as local processes -----------------------------------------------------------------------

class Fleet:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis_port, self.flower_port, self.metrics_port = free_port(), free_port(), free_port()
        self.compose = load_compose(ENV)
        self.redis_url = f"redis://:{ENV['REDIS_PASSWORD']}@127.0.0.1:{self.redis_port}/0"

    def local(self, text: str) -> str:
        """A compose string as it applies here: our ports, our folders, the venv's programs."""
        return text.replace("5555", str(self.flower_port)).replace("9808", str(self.metrics_port))

    def argv(self, command: list[str]) -> list[str]:
        argv = [self.local(a) for a in command]
        if argv[0] in ("crewq", "celery"):  # the console scripts that `pip install` put beside this Python
            return [shutil.which(argv[0], path=VENV_BIN) or argv[0]] + argv[1:]
        if argv[0] == "redis-server":
            return [find_redis_server()] + argv[1:]
        raise AssertionError(f"unknown program {argv[0]}")

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
        env.update({k: str(v) for k, v in (self.compose["services"][service].get("environment") or {}).items()})
        env.update(FAST_ENV)
        if env.get("CREWQ_POLICY") == "/etc/crewq/policy.yaml":  # the compose file's mount, from here
            env["CREWQ_POLICY"] = str(ROOT / "config" / "policy.example.yaml")
        env.update(CREWQ_REDIS_URL=self.redis_url, CREWQ_CREWS_DIR=str(self.tmp / "crews"), HOSTNAME=HOST,
                   PATH=VENV_BIN + os.pathsep + env.get("PATH", ""))
        return env

    def start(self, service: str, extra: list[str] = ()) -> None:
        argv = self.argv(self.compose["services"][service]["command"]) + list(extra)
        print(f"[fleet] {service}: {' '.join(argv)}")  # shown with -s: what the compose file starts
        log = open(self.tmp / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(argv, env=self.env(service), cwd=ROOT, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def log(self, service: str) -> str:
        return (self.tmp / f"{service}.log").read_text(errors="replace")

    def healthcheck(self, service: str) -> subprocess.Popen:
        test = self.compose["services"][service]["healthcheck"]["test"]
        if test[0] == "CMD-SHELL":
            cli = shutil.which("redis-cli") or str(Path(find_redis_server()).with_name("redis-cli"))
            argv = ["sh", "-c", self.local(test[1]).replace("redis-cli", f"{cli} -p {self.redis_port}")]
        else:
            argv = [self.local(a) for a in test[1:]]
        return subprocess.Popen(argv, env=self.env(service), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def stop(self) -> dict[str, int]:
        """SIGTERM, as `docker compose down` sends it: the services first, Redis last."""
        codes = {}
        for group in ([s for s in self.procs if s != "redis"], [s for s in self.procs if s == "redis"]):
            for service in group:
                if self.procs[service].poll() is None:
                    os.killpg(self.procs[service].pid, signal.SIGTERM)
            for service in group:
                try:
                    codes[service] = self.procs[service].wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.procs[service].pid, signal.SIGKILL)
                    codes[service] = self.procs[service].wait()
        return codes


def http(url: str, auth: tuple[str, str] | None = None, data: dict | None = None, timeout: float = 10):
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return reply.status, reply.read().decode()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def flower_page_in_chromium(url: str, tmp: Path) -> str:
    """Headless Chromium (Debian's) logs in to a Flower page: its rendered DOM, and a screenshot
    beside it (flower-workers.png in the test's folder)."""
    base = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/chrome", "--virtual-time-budget=5000"]
    shot = subprocess.run(base + ["--window-size=1400,800", f"--screenshot={tmp}/flower-workers.png", url],
                          capture_output=True, timeout=120)
    assert shot.returncode == 0 and (tmp / "flower-workers.png").read_bytes()[:4] == b"\x89PNG", shot.stderr[-2000:]
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


def flower_enabled_events(fleet: "Fleet", app, nodes: list[str], timeout: float = 30) -> None:
    """Wait for Flower's `enable_events` broadcast (workers send no task events by default; Flower
    turns them on every 5 s), then for a ping from every worker: each handles its control messages
    in order, so by its answer it has handled that broadcast too."""
    listener = redis.Redis.from_url(fleet.redis_url).pubsub()
    listener.psubscribe("*pidbox*")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = listener.get_message(timeout=1.0)
            if message and message["type"] == "pmessage":
                body = json.loads(message["data"]).get("body", "")
                if b"enable_events" in base64.b64decode(body):
                    break
        else:
            raise AssertionError(f"Flower did not enable task events in {timeout:g}s: {fleet.log('flower')[-2000:]}")
    finally:
        listener.close()
    until(lambda: len(app.control.ping(destination=nodes, timeout=1)) == len(nodes), 30, "a ping", fleet)


def until(check, timeout: float, what: str, fleet: Fleet, service: str | None = None):
    """Poll `check` (a readiness probe: these processes signal readiness no other way) up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service and fleet.procs[service].poll() is not None:
            raise AssertionError(f"{service} exited: {fleet.log(service)[-3000:]}")
        try:
            found = check()
        except (OSError, urllib.error.URLError, redis.RedisError):
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s" + (f": {fleet.log(service)[-3000:]}" if service else ""))


@pytest.mark.slow
def test_the_compose_fleet_runs_crews_from_flower_and_beat(tmp_path):
    fleet = Fleet(tmp_path)
    (tmp_path / "crews").mkdir()
    (tmp_path / "crews" / "ticker.yaml").write_text(TICKER, encoding="utf-8")
    (tmp_path / "redis").mkdir()
    not_checked = []  # parts this machine cannot check: the test says so (a skip with the reason) at the end

    fleet.start("redis", ["--port", str(fleet.redis_port), "--bind", "127.0.0.1", "--dir", str(tmp_path / "redis")])
    client = redis.Redis.from_url(fleet.redis_url)
    until(client.ping, 10, "redis", fleet, "redis")
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=fleet.redis_port).ping()
    client.close()

    app = create_app(Settings(redis_url=fleet.redis_url))
    try:
        for service in ("worker-llm", "worker-tools", "flower", "supervisor"):
            fleet.start(service, ["--address=127.0.0.1"] if service == "flower" else
                        ["--metrics-addr", "127.0.0.1"] if service == "supervisor" else [])
        nodes = [f"llm@{HOST}", f"tools@{HOST}"]
        for node, service in zip(nodes, ("worker-llm", "worker-tools")):
            until(lambda: app.control.ping(destination=[node], timeout=0.5), 60, node, fleet, service)
        flower = f"http://127.0.0.1:{fleet.flower_port}"
        auth = (ENV["FLOWER_USER"], ENV["FLOWER_PASSWORD"])
        until(lambda: http(flower + "/healthcheck")[1] == "OK", 30, "flower", fleet, "flower")
        flower_enabled_events(fleet, app, nodes)  # Flower shows tasks from their events: on once it asks

        # Flower's HTTP API: basic auth, then a crew by value, as any language can send it
        with pytest.raises(urllib.error.HTTPError, match="401"):
            http(flower + "/api/workers")
        status, body = http(flower + "/api/task/async-apply/crewq.submit", auth,
                            {"args": [SUBMITTED], "kwargs": {"inputs": {"topic": "tides"}}})
        task_id = json.loads(body)["task-id"]
        result = until(lambda: json.loads(http(f"{flower}/api/task/result/{task_id}?timeout=1", auth)[1])
                       .get("result"), 30, "the submit task's result", fleet, "flower")
        run = Client(app).wait(result, timeout=30)
        assert run.status == "succeeded" and run.output == "an explainer"
        print(f"[fleet] Flower's async-apply: task {task_id} -> run {result}: {run.status}, {run.output!r}")

        # beat: the crew file's schedule (every 1s) starts runs of its own
        fleet.start("beat")
        runs = Client(app)
        ticker = until(lambda: next((r for r in runs.ledger.recent_runs() if runs.ledger.run(r).get("name") == "ticker"),
                                    None), 30, "a run from beat", fleet, "beat")
        assert runs.wait(ticker, timeout=30).output == "high water at noon"
        print(f"[fleet] beat started run {ticker} of crew 'ticker': {runs.status(ticker).output!r}")
        assert runs.status(ticker).agents["reporter"].status == "succeeded"

        workers = until(lambda: json.loads(http(flower + "/api/workers?refresh=1", auth)[1]), 20,
                        "flower's workers", fleet, "flower")
        assert set(nodes) <= set(workers)
        assert ENV["REDIS_PASSWORD"] not in json.dumps(workers.get(nodes[0], {}).get("stats", {}))
        # Flower's task list: ids in the arguments (run, agent, turn, attempt), no conversation, no secret
        tasks = json.loads(http(flower + "/api/tasks?limit=200", auth)[1]).values()
        turns = [t for t in tasks if t["name"] == "crewq.agent_turn" and result in (t.get("args") or "")]
        assert {t["args"] for t in turns} >= {f"('{result}', 'researcher', 0, 0)", f"('{result}', 'writer', 0, 0)"}
        for task in tasks:
            if task["name"] != "crewq.submit":  # (its argument is the crew file, by value)
                shown = f"{task.get('args')} {task.get('kwargs')} {task.get('result')}"
                assert "facts about" not in shown and "an explainer" not in shown and ENV["REDIS_PASSWORD"] not in shown
        status, metrics = http(flower + "/metrics")
        assert status == 200 and "flower_events_total" in metrics
        if shutil.which("chromium"):
            page = flower_page_in_chromium(f"http://{auth[0]}:{auth[1]}@127.0.0.1:{fleet.flower_port}/workers",
                                           tmp_path)
            assert all(node in page for node in nodes), page[-2000:]
        else:
            not_checked.append("Flower's workers page in a browser (no `chromium` on PATH)")

        checks = {s: fleet.healthcheck(s) for s in ("redis", "worker-llm", "worker-tools", "flower", "supervisor")}
        for service, check in checks.items():
            output = check.communicate(timeout=30)[0]
            assert check.returncode == 0, f"{service} healthcheck: {output}"

        status, text = http(f"http://127.0.0.1:{fleet.metrics_port}/metrics")

        def sample(line: str) -> float:
            found = re.search("^" + re.escape(line) + r" (\S+)$", text, re.M)
            assert found, f"{line} not in {text}"
            return float(found.group(1))
        # Beat fires every second, so the counts grow while the test runs: at least the two runs
        # waited for above (Flower's and beat's first), at most as many as were submitted.
        succeeded = sample('crewq_runs_finished_total{status="succeeded"}')
        assert 2 <= succeeded <= sample("crewq_runs_submitted_total"), text
        assert sample("crewq_workers_alive") >= len(nodes), text
        print("[fleet] supervisor /metrics:\n" + "\n".join(
            line for line in text.splitlines() if re.match(r"crewq_(runs_finished|workers_alive|llm_calls|"
                                                          r"tokens|agent_duration_seconds_count)", line)))

        # JSON log lines that name the run and agent of the task they come from
        lines = [json.loads(line) for line in fleet.log("worker-llm").splitlines() if line.startswith("{")]
        assert any(line["run_id"] == result and line["agent_id"] == "writer" for line in lines)
    finally:
        app.close()
        codes = fleet.stop()
    for service in ("worker-llm", "worker-tools", "beat", "flower", "redis", "supervisor"):
        assert codes[service] == 0, f"{service} exited {codes[service]}: {fleet.log(service)[-2000:]}"
    assert "cold shutdown" in fleet.log("worker-llm").lower()  # SIGTERM was remapped to Celery's SIGQUIT
    assert "Traceback" not in fleet.log("supervisor")
    supervisor_lines = [json.loads(line) for line in fleet.log("supervisor").splitlines() if line.startswith("{")]
    assert any(line["logger"] == "crewq.supervisor" for line in supervisor_lines)  # CREWQ_LOG_FORMAT=json here too
    beat_lines = [json.loads(line) for line in fleet.log("beat").splitlines() if line.startswith("{")]
    assert any("submitted run" in line["message"] for line in beat_lines)
    if not_checked:
        pytest.skip("everything else passed; not checked here: " + "; ".join(not_checked))


def test_the_worker_conf_that_flower_shows_hides_the_redis_password():
    app = create_app(Settings(redis_url="redis://:hunter2@127.0.0.1:1/0"))
    try:
        shown = json.dumps(app.conf.table(with_defaults=False), default=str)  # what `inspect conf` replies
    finally:
        app.close()
    assert "hunter2" not in shown


def test_another_celery_app_submits_by_task_name(worker, redis_url):
    """The README's example: an app that knows only the broker sends `crewq.submit` and gets the run id."""
    from celery import Celery
    other = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)
    other.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
    try:
        result = other.send_task("crewq.submit", args=[SUBMITTED], kwargs={"inputs": {"topic": "tides"}},
                                 queue="crewq.control")
        run_id = result.get(timeout=30)
        client = Client(worker)
        assert client.wait(run_id, timeout=30).output == "an explainer"
        run = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(f"crewq:run:{run_id}")
        assert run["status"] == "succeeded" and run["output"] == "an explainer"

        bad = other.send_task("crewq.submit", args=["agents: [{id: a, depends_on: [ghost]}]\n"],
                              queue="crewq.control")
        with pytest.raises(Exception, match="ghost"):
            bad.get(timeout=30)
    finally:
        other.close()
