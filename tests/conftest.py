"""Shared fixtures: a private redis-server, a Celery app on it, workers in a thread or as
subprocesses, and a guard that fails any test whose code tries to reach beyond this machine."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from crewq.config.settings import Settings
from crewq.scheduler.embedded import in_process_worker
from crewq.scheduler.local_redis import LocalRedis, find_redis_server, free_port
from crewq.scheduler.supervisor import SupervisorThread
from crewq.workers.app import create_app

ROOT = Path(__file__).resolve().parent.parent
HOST = socket.gethostname()
# The tests' own modules (fakes, helpers) are found from tests/, in worker subprocesses too; crewq
# itself is always the installed package (`./dev test` runs `python -P`, so the repository root is
# not on sys.path and `config`, `workers`, `scheduler` are never top-level names).
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
# The tests' operator trusts their crews (python tools from tests/fakes, fakes on 127.0.0.1): the fleet
# default policy is tested on its own, with CREWQ_POLICY unset (test_policy.py).
os.environ["CREWQ_POLICY"] = "trusted"


# -- no live network ------------------------------------------------------------------------------

def _is_local(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any connection to a non-loopback address fails the test (even if the code swallows the error)."""
    attempts: list = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            attempts.append(address)
            raise ConnectionRefusedError(f"tests must not reach the network: {address}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert not attempts, f"code tried to reach the network: {attempts}"


def pytest_collection_modifyitems(items):
    """Tests that start worker subprocesses are `slow`; `./dev test -m "not slow"` leaves them out."""
    for item in items:
        if "worker_processes" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# -- redis, app, workers --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server():
    with LocalRedis() as server:
        yield server


class RestartableRedis:
    """A redis-server with an append-only file (fsync every second, as docs/operations.md advises)
    that a test can stop with a signal and start again on the same port and data folder."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RestartableRedis":
        self.process = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--appendfsync", "everysec", "--save", "", "--dir", str(self.folder), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "redis-server exited"
                try:
                    if client.ping():  # ping also fails with LOADING while the AOF is replayed
                        return self
                except redis.RedisError:
                    time.sleep(0.02)  # readiness poll: the server gives no other signal
        finally:
            client.close()
        raise RuntimeError("redis-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(20)

    def restart(self, sig: int) -> None:
        self.stop(sig)
        self.start()


@pytest.fixture(scope="module")
def apis():
    """The local fakes of the web APIs the built-in tools call (search, scrape, translate, mail...)."""
    from fakes.tool_servers import FakeApis
    with FakeApis() as fake:
        yield fake


@pytest.fixture
def aof_redis(tmp_path):
    server = RestartableRedis(tmp_path / "redis-data")
    server.folder.mkdir()
    yield server.start()
    server.stop(signal.SIGKILL)


@pytest.fixture
def redis_url(redis_server) -> str:
    """A clean database on the session's private redis-server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


# Short clocks so that restarts, takeovers and dead-worker requeues happen within a test's patience.
FAST = dict(restart_backoff=0.05, restart_backoff_max=0.5, heartbeat_interval=0.5, heartbeat_ttl=2.0,
            leader_ttl=2.0, sweep_interval=0.2, stall_after=3.0)
FAST_ENV = {f"CREWQ_{k.upper()}": str(v) for k, v in FAST.items()}


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings(redis_url=redis_url, **FAST)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.close()


@pytest.fixture
def ledger(app):
    return app.ledger


@pytest.fixture
def supervisor(app):
    """The supervisor service in a thread of this process."""
    with SupervisorThread(app, name="test-supervisor") as service:
        yield service


@pytest.fixture
def worker(app, supervisor):
    """A real Celery worker (threads pool) in a thread of this process, with the supervisor."""
    with in_process_worker(app, concurrency=8, hostname=f"thread@{HOST}"):
        yield app


class WorkerProcesses:
    """Celery workers as subprocesses (`crewq worker`), for tests that need several hosts or kill one."""

    def __init__(self, app, redis_url: str, logdir: Path):
        self.app, self.redis_url, self.logdir = app, redis_url, logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, concurrency: int = 8, pool: str = "threads", env: dict | None = None,
              timeout: float = 60.0, loglevel: str = "WARNING", queues: str | None = None) -> str:
        node = f"{name}@{HOST}"
        log = open(self.logdir / f"{name}.log", "ab")
        self.procs[node] = subprocess.Popen(
            [sys.executable, "-m", "crewq", "worker", "-n", node, "-c", str(concurrency), "-P", pool,
             "-l", loglevel] + (["-Q", queues] if queues else []),
            env={**os.environ, "CREWQ_REDIS_URL": self.redis_url, **FAST_ENV, **(env or {})}, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_ready(node, timeout)
        return node

    def wait_ready(self, node: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[node].poll() is not None:
                raise RuntimeError(f"worker {node} exited: {self.log(node)[-3000:]}")
            if self.app.control.ping(destination=[node], timeout=0.5):
                return
        raise RuntimeError(f"worker {node} not ready after {timeout}s: {self.log(node)[-3000:]}")

    def log(self, node: str) -> str:
        return (self.logdir / f"{node.split('@')[0]}.log").read_text(errors="replace")

    def kill(self, node: str, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.procs[node].pid, sig)
        self.procs[node].wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_supervisor(redis_url: str, name: str, logdir: Path, env: dict | None = None) -> subprocess.Popen:
    """`crewq supervisor` as a subprocess (its own session, so killpg ends it and its children)."""
    log = open(logdir / f"{name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "crewq", "supervisor", "--name", name, "-l", "INFO"],
                            env={**os.environ, "CREWQ_REDIS_URL": redis_url, **FAST_ENV, **(env or {})}, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


@pytest.fixture
def worker_processes(app, redis_url, tmp_path):
    procs = WorkerProcesses(app, redis_url, tmp_path)
    yield procs
    procs.stop_all()
