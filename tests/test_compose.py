"""The fleet of docker-compose.yml with real containers: `./dev compose-test`.

Docker's daemon (Debian's docker.io, started here when none runs), base images made offline by
debootstrap (python3 + venv; redis-server) and `docker import`, cached under CREWQ_COMPOSE_CACHE,
the project's Dockerfile built on the first, and the project's own docker-compose.yml brought up
with tests/compose/docker-compose.test.yml: every service on the host's network, Redis on a free
port. Compose is Debian's docker-compose 1.29 (the v2 plugin is not packaged by Debian); it cannot
drop the file's `ports:` in an override, and docker refuses ports with the host's network, so the
merged `docker-compose config` is used with `ports:` removed.

Skips, saying why, unless run by `./dev compose-test` as root with Docker able to run. CI runs it
(.ci/run) on a shared machine: runs take a lock, sweep what an earlier run left (its dockerd, its
projects' containers, networks and volumes), leave nothing running, and wait on events with generous
bounds, never on durations.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

from crewq.config.settings import Settings
from crewq.scheduler.commands import format_event
from crewq.scheduler.local_redis import free_port
from crewq.scheduler.runs import Client
from crewq.workers.app import create_app

import conftest

pytestmark = [pytest.mark.compose, pytest.mark.timeout(2400)]

ROOT = conftest.ROOT
OVERRIDE = ROOT / "tests" / "compose" / "docker-compose.test.yml"
CACHE = Path(os.environ.get("CREWQ_COMPOSE_CACHE", "/var/cache/crewq-compose"))
DOCKER = "/usr/bin/docker"  # Debian's client: it builds with BuildKit (secrets) without buildx
PIDFILE = Path("/var/run/crewq-compose-dockerd.pid")  # the dockerd this test starts (./dev checks it too)
PROJECT_PREFIX = "crewqtest"
NICE = ["nice", "-n", "19", "ionice", "-c3"]  # a shared machine: builds give way to tests
BASES = {  # name: (Debian packages, `docker import --change`s)
    "python": (["python3", "python3-venv"], []),
    "redis": (["redis-server"], ["WORKDIR /data", "USER redis"]),
}
PASSWORD, FLOWER = "pw-c0mp05e", ("admin", "fl-c0mp05e")
LLM = ["celery", "-A", "crewq.workers.celery_app"]
FIGURES: dict[str, object] = {}

LONG = """
runtime: {name: long, llm_provider: scripted}
agents:
  - id: slow
    script: [{latency: 20s, text: "the long answer"}]
  - {id: after, depends_on: [slow], script: [{text: "after: done"}]}
"""
STOPPED = """
runtime: {name: stopped, llm_provider: scripted}
agents:
  - id: slow
    script: [{latency: 12s, text: "finished while stopping"}]
  - {id: after, depends_on: [slow], script: [{text: "after the start"}]}
"""
TICKER = """
runtime: {name: ticker, llm_provider: scripted}
task: {input: "Tide report for {harbour}"}
schedule: {every: 10s, inputs: {harbour: Brest}}
agents:
  - id: reporter
    script: [{text: "high water at noon"}]
"""


def sh(*argv, check=True, timeout=600, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode:
        command = " ".join(map(str, argv))
        raise AssertionError(f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


class Crashed(Exception):
    """Ends a wait at once: what it waits for will not come."""


def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, redis.RedisError, AssertionError, LookupError):
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s")


# -- docker: the daemon, the base images, the project's image ------------------------------------

def our_dockerd() -> int | None:
    """The pid of a dockerd this test started and did not stop (a run killed before its teardown)."""
    try:
        pid = int(PIDFILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None  # (a stale pidfile whose pid now names another process)


def stop_dockerd(pid: int, timeout: float = 120) -> bool:
    """SIGTERM: dockerd stops the containers and its containerd. SIGKILL if it hangs: returns False."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reaped, or it lingers as a zombie
                return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # dead; its parent (not us) reaps it
        except OSError:
            return True
        time.sleep(0.5)
    for kill in (os.killpg, os.kill):  # (its process group: it was started in a session of its own)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    return False


def sweep() -> list[str]:
    """Remove what earlier runs' projects left: containers (a restarted daemon brings back those with
    `restart: unless-stopped`), then their networks and volumes. It runs under the lock and before
    this run's project exists, so every crewqtest project is a leftover."""
    removed = []
    label = '{{.Label "com.docker.compose.project"}}'
    for kind, listing in (("container", ["ps", "-a"]), ("network", ["network", "ls"]), ("volume", ["volume", "ls"])):
        out = sh(DOCKER, *listing, "--filter", "label=com.docker.compose.project", "--format",
                 f"{{{{.{'Name' if kind == 'volume' else 'ID'}}}}} {label}", timeout=120).stdout
        stale = [ref for ref, project in (line.split(maxsplit=1) for line in out.splitlines() if " " in line)
                 if project.startswith(PROJECT_PREFIX)]
        if stale:
            sh(DOCKER, *({"container": ["rm", "-f", "-v"], "network": ["network", "rm"],
                          "volume": ["volume", "rm", "-f"]}[kind]), *stale, timeout=300)
            removed += [f"{kind} {ref}" for ref in stale]
    return removed


@pytest.fixture(scope="module")
def dockerd():
    if not os.environ.get("CREWQ_COMPOSE_TEST"):
        pytest.skip("the compose fleet test runs with ./dev compose-test (it starts dockerd and builds images)")
    if os.geteuid() != 0:
        pytest.skip("the compose fleet test needs root (dockerd, debootstrap)")
    missing = [t for t in ("dockerd", "debootstrap", "docker-compose") if not shutil.which(t)]
    if missing or not Path(DOCKER).exists():
        pytest.skip(f"not installed: {', '.join(missing) or DOCKER} (./dev compose-test installs them with apt-get)")
    CACHE.mkdir(parents=True, exist_ok=True)
    # One compose test at a time on a machine: they share the daemon, the cache and the sweep.
    with open(CACHE / "lock", "w") as lock:
        deadline = time.monotonic() + 1800
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another compose test held {CACHE / 'lock'} for 30 minutes") from None
                time.sleep(2)
        yield from _daemon()


def _daemon():
    leftover = our_dockerd()
    if leftover:  # an earlier run's, in whatever state it was left: a fresh one is started instead
        gone = stop_dockerd(leftover)
        print(f"[compose] stopped the dockerd an earlier run left running (pid {leftover}"
              f"{'' if gone else ', SIGKILL after 120 s'})")
    if sh(DOCKER, "info", check=False, timeout=60).returncode == 0:
        print(f"[compose] swept: {sweep() or 'nothing'}")
        yield None  # somebody's daemon: used, left running
        return
    log_path = CACHE / "dockerd.log"
    for driver in ("overlay2", "vfs"):  # overlay2 where the kernel allows it: far faster than vfs
        log = open(log_path, "w")
        proc = subprocess.Popen(NICE + ["dockerd", "--iptables=false", "--bridge=none", "--storage-driver", driver,
                                        "--pidfile", str(PIDFILE)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if sh(DOCKER, "info", check=False, timeout=60).returncode == 0:
                break
            time.sleep(0.5)
        if proc.poll() is None and sh(DOCKER, "info", check=False, timeout=60).returncode == 0:
            break
        stop_dockerd(proc.pid)
    else:
        pytest.skip(f"dockerd does not start here: {log_path.read_text(errors='replace')[-1500:]}")
    FIGURES["storage_driver"] = driver
    try:
        print(f"[compose] swept: {sweep() or 'nothing'}")
        yield proc
    finally:
        # Old builds' layers (vfs copies each one whole) would pile up run after run.
        sh(DOCKER, "image", "prune", "-f", check=False, timeout=300)
        assert stop_dockerd(proc.pid), "dockerd did not stop within 120 s of SIGTERM: killed"
        assert our_dockerd() is None and sh(DOCKER, "info", check=False, timeout=60).returncode != 0, \
            "the compose test's dockerd still answers after its teardown"


def debian_source() -> tuple[str, str]:
    """This machine's Debian suite and mirror: the base images are made from the same packages."""
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    mirror = "http://deb.debian.org/debian"
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        found = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
        if found:
            mirror = found.group(1)
            break
    return release.get("VERSION_CODENAME", "bookworm").strip('"'), mirror


def base_image(name: str) -> str:
    """debootstrap --variant=minbase + docker import, cached by a hash of what goes in."""
    packages, changes = BASES[name]
    suite, mirror = debian_source()
    key = hashlib.sha256(json.dumps([suite, mirror, packages, changes, 1]).encode()).hexdigest()[:12]
    tag = f"crewq-compose-{name}:{key}"
    started = time.monotonic()
    if sh(DOCKER, "image", "inspect", tag, check=False).returncode == 0:
        FIGURES[f"base_{name}_s"] = "cached image"
        return tag
    tar = CACHE / f"{name}-{key}.tar"
    if not tar.exists():
        root = CACHE / f"{name}-{key}.rootfs"
        shutil.rmtree(root, ignore_errors=True)
        (CACHE / "debs").mkdir(parents=True, exist_ok=True)
        sh(*NICE, "debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
           f"--cache-dir={CACHE / 'debs'}", suite, root, mirror, timeout=1800)
        if name == "redis":
            (root / "data").mkdir(exist_ok=True)
            sh("chroot", root, "chown", "redis:redis", "/data")
        for junk in ("usr/share/doc", "usr/share/man", "var/lib/apt/lists"):
            shutil.rmtree(root / junk, ignore_errors=True)
        sh("tar", "-C", root, "-cf", f"{tar}.part", ".", timeout=600)
        os.replace(f"{tar}.part", tar)
        shutil.rmtree(root)
    sh(DOCKER, "import", *[a for c in changes for a in ("--change", c)], tar, tag, timeout=600)
    FIGURES[f"base_{name}_s"] = round(time.monotonic() - started, 1)
    return tag


def pip_secrets(tmp: Path) -> tuple[Path, Path]:
    """This machine's pip settings for reaching PyPI (index, CA bundle), as files for BuildKit secrets."""
    listed = sh("python3", "-m", "pip", "config", "list", check=False).stdout
    config = dict(re.findall(r"^[\w:.]*?(index-url|timeout|trusted-host)='(.*)'$", listed, re.M))
    cert = os.environ.get("PIP_CERT") or next(iter(re.findall(r"cert='(.*)'$", listed, re.M)), None) \
        or "/etc/ssl/certs/ca-certificates.crt"
    conf = tmp / "pip.conf"
    conf.write_text("[global]\ncert = /run/secrets/pipca\n" + "".join(f"{k} = {v}\n" for k, v in config.items()
                                                                    if not v.startswith("file:")))
    return conf, Path(cert)


@pytest.fixture(scope="module")
def images(dockerd, tmp_path_factory):
    python, redis_image = base_image("python"), base_image("redis")
    conf, ca = pip_secrets(tmp_path_factory.mktemp("pip"))
    started = time.monotonic()
    sh(*NICE, DOCKER, "build", "--network", "host", "--secret", f"id=pipconf,src={conf}",
       "--secret", f"id=pipca,src={ca}", "--build-arg", f"BASE_IMAGE={python}", "-t", "crewq:compose-test", ROOT,
       env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=1800)
    FIGURES["image_build_s"] = round(time.monotonic() - started, 1)
    # What users get: no pip configuration, no CA bundle of ours, no tests, a user of its own.
    inside = sh(DOCKER, "run", "--rm", "--network", "host", "crewq:compose-test", "sh", "-c",
                "id -u; find /app /run/secrets /opt/crewq/lib/python3*/site-packages/tests -mindepth 1 2>/dev/null | wc -l;"
                " find / -xdev -name 'test_compose.py' -o -name 'docker-compose.test.yml' | wc -l;"
                " python -c 'import crewq.scheduler.cli, crewq.workers.app'").stdout.split()
    assert inside == ["10001", "0", "0"], inside
    history = sh(DOCKER, "history", "--no-trunc", "crewq:compose-test").stdout
    assert "pipca" not in history.replace("id=pipca", "") and "BEGIN CERTIFICATE" not in history
    return redis_image


# -- the fleet ---------------------------------------------------------------------------------------

class Fleet:
    def __init__(self, redis_image: str, crews: Path, work: Path):
        self.redis_port, self.flower_port, self.metrics_port = free_port(), free_port(), free_port()
        self.project = f"{PROJECT_PREFIX}{os.getpid()}"
        self.env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "FLOWER_USER": FLOWER[0], "FLOWER_PASSWORD": FLOWER[1],
                    "REDIS_IMAGE": redis_image, "CREWQ_IMAGE_TAG": "compose-test", "REDIS_HOST": "127.0.0.1",
                    "REDIS_PORT": str(self.redis_port), "FLOWER_PORT": str(self.flower_port),
                    "CREWQ_METRICS_PORT": str(self.metrics_port), "CREWQ_CREWS": str(crews)}
        merged = yaml.safe_load(self.compose("-f", ROOT / "docker-compose.yml", "-f", OVERRIDE, "config").stdout)
        for service in merged["services"].values():
            assert service["network_mode"] == "host"
            service.pop("ports", None)  # (docker refuses published ports on the host's network)
        self.file = work / "fleet.yml"
        self.file.write_text(yaml.safe_dump(merged), encoding="utf-8")
        self.redis_url = f"redis://:{PASSWORD}@127.0.0.1:{self.redis_port}/0"

    def compose(self, *args, check=True, timeout=600) -> subprocess.CompletedProcess:
        files = ("-f", self.file, "--project-directory", ROOT) if hasattr(self, "file") else ()
        return sh("docker-compose", "-p", self.project, *files, *args, check=check, timeout=timeout, env=self.env)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def health(self) -> dict[str, str]:
        """Each container's health (its state where it has no healthcheck); a container its restart
        policy restarted is a crash: its logs are the reason."""
        ids = self.compose("ps", "-q").stdout.split()
        out = sh(DOCKER, "inspect", "--format", "{{.Name}} {{.RestartCount}} "
                 "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}", *ids).stdout
        health = {}
        for name, restarts, status in (line.split() for line in out.splitlines()):
            if restarts != "0":
                logs = sh(DOCKER, "logs", "--tail", "30", name.lstrip("/"), check=False)
                raise Crashed(f"{name} restarted {restarts} times:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")
            health[name] = status
        return health

    def nodes(self, service: str) -> dict[str, str]:
        """Each running container's Celery node name (its entrypoint keeps it in /tmp/node)."""
        return {sh(DOCKER, "exec", c, "cat", "/tmp/node", timeout=120).stdout.strip(): c for c in self.containers(service)}

    def running(self) -> list[str]:
        ids = self.compose("ps", "-q").stdout.split()
        out = sh(DOCKER, "inspect", "--format", "{{.Id}} {{.State.Running}}", *ids).stdout
        return [ref for ref, running in (line.split() for line in out.splitlines()) if running == "true"]

    def llm_nodes(self) -> set[str]:
        out = self.compose("exec", "-T", "worker-tools", *LLM, "inspect", "ping", "-t", "10", check=False,
                           timeout=120).stdout
        return set(re.findall(r"->\s+(llm-\S+): OK", out))

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout[-6000:]


def wait_healthy(fleet: Fleet, timeout: float = 600) -> float:
    started = time.monotonic()
    # (beat has no healthcheck: it is "running"; the others must say "healthy")
    until(lambda: all(s == "healthy" or (s == "running" and "beat" in n) for n, s in fleet.health().items()),
          timeout, "every service healthy")
    return round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def fleet(images):
    work = Path(tempfile.mkdtemp(prefix="crewq-compose-"))
    crews = work / "crews"
    shutil.copytree(ROOT / "config" / "crews", crews)
    for name, text in (("long", LONG), ("stopped", STOPPED), ("ticker", TICKER)):
        (crews / f"{name}.yaml").write_text(text, encoding="utf-8")
    for path in [work, *work.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the image's user (uid 10001) reads the crews
    fleet = Fleet(images, crews, work)
    try:
        started = time.monotonic()
        fleet.compose("up", "-d", "--no-build")
        wait_healthy(fleet)
        FIGURES["up_to_healthy_s"] = round(time.monotonic() - started, 1)
        yield fleet
    finally:
        print(fleet.logs())
        fleet.compose("down", "-v", "--remove-orphans", "-t", "30", check=False, timeout=900)
        shutil.rmtree(work, ignore_errors=True)
        mine = f"label=com.docker.compose.project={fleet.project}"
        left = {kind: sh(DOCKER, *listing, "-q", "--filter", mine, timeout=120).stdout.split()
                for kind, listing in (("containers", ["ps", "-a"]), ("networks", ["network", "ls"]),
                                      ("volumes", ["volume", "ls"]))}
        assert not any(left.values()), f"left after docker-compose down -v: {left}"
        print("[compose] figures: " + json.dumps(FIGURES))


@pytest.fixture(scope="module")
def client(fleet):
    app = create_app(Settings(redis_url=fleet.redis_url))
    yield Client(app)
    app.close()


def test_the_compose_fleet_with_real_containers(fleet, client):
    print("[compose] docker-compose ps:\n" + fleet.compose("ps").stdout)

    # the README's commands, in the containers
    run_id = fleet.compose("exec", "-T", "worker-tools", "crewq", "submit", "/crews/demo.yaml", "-i",
                           "topic=tides").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", run_id), run_id
    client.wait(run_id, timeout=600)
    status = fleet.compose("exec", "-T", "worker-tools", "crewq", "status", run_id).stdout
    assert "succeeded" in status and "Tides: why the sea breathes" in status, status

    # --scale: three LLM consumers
    fleet.compose("up", "-d", "--no-build", "--scale", "worker-llm=3")
    wait_healthy(fleet)
    nodes = until(lambda: (lambda n: n if len(n) == 3 else None)(fleet.llm_nodes()), 300, "three llm consumers")
    print(f"[compose] after --scale worker-llm=3, celery inspect ping: {sorted(nodes)}")
    print("[compose] docker-compose ps:\n" + fleet.compose("ps").stdout)
    FIGURES["consumers_after_scale"] = sorted(nodes)

    # docker kill of the container holding a long turn: redelivered, output recorded once
    llm = fleet.nodes("worker-llm")  # (before the turn: then only `docker kill` stands between it and the kill)
    assert sorted(llm) == sorted(nodes), (llm, nodes)
    long_id = client.submit(LONG)
    started = until(lambda: next((e for e in client.events(long_id) if e.type == "turn_started"), None), 300,
                    "the long turn started")
    sh(DOCKER, "kill", llm[started.host])
    killed_at = time.time()
    final = client.wait(long_id, timeout=600)
    events = list(client.events(long_id))
    first = [e for e in events if e.type == "agent_succeeded" and e.agent == "slow"]
    assert first and first[0].ts > killed_at, f"the 20 s turn ended before docker kill: {events}"
    assert final.output == "after: done"
    requeued = [e for e in events if e.type == "requeued"]
    assert len(requeued) == 1 and requeued[0].dead_worker.startswith(started.host), requeued
    rerun = [e for e in events if e.type == "turn_started" and e.agent == "slow" and e.ts > killed_at]
    assert rerun and rerun[0].host != started.host, rerun
    assert [e.agent for e in events if e.type == "agent_succeeded"] == ["slow", "after"]
    FIGURES["redelivery_after_kill_s"] = round(rerun[0].ts - killed_at, 1)
    print("[compose] events of the run that survived docker kill (crewq events):\n"
          + "\n".join(format_event(e) for e in events))

    # docker-compose stop with a turn in flight: graceful; after start the run completes
    running = fleet.running()  # (the killed one stays down)
    stop_id = client.submit(STOPPED)
    until(lambda: any(e.type == "turn_started" for e in client.events(stop_id)), 300, "the turn started")
    stopping_at = time.time()
    fleet.compose("stop", timeout=600)
    codes = sh(DOCKER, "inspect", "--format", "{{.Name}} {{.State.ExitCode}}", *running).stdout
    print("[compose] exit codes after docker-compose stop:\n" + codes)
    assert all(line.endswith(" 0") for line in codes.splitlines()), codes
    fleet.compose("start")
    assert client.wait(stop_id, timeout=600).output == "after the start"
    slow = [e for e in client.events(stop_id) if e.type == "agent_succeeded" and e.agent == "slow"]
    assert len(slow) == 1 and slow[0].ts > stopping_at, slow  # it finished during the soft shutdown
    wait_healthy(fleet)

    # Flower: basic auth
    flower = f"http://127.0.0.1:{fleet.flower_port}/api/workers?refresh=1"
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(flower, timeout=60)
    token = base64.b64encode(":".join(FLOWER).encode()).decode()
    answer = urllib.request.urlopen(urllib.request.Request(flower, headers={"Authorization": f"Basic {token}"}),
                                    timeout=60)
    assert answer.status == 200 and any(n.startswith("llm-") for n in json.loads(answer.read()))

    # beat: the crew with a schedule started runs of its own
    ledger = client.ledger
    ticker = until(lambda: next((r for r in ledger.recent_runs(200) if ledger.run(r).get("name") == "ticker"), None),
                   300, "a run started by beat")
    assert client.wait(ticker, timeout=300).output == "high water at noon"
