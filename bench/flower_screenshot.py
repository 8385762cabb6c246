"""Screenshots of Flower's workers and tasks pages, logged in, with crewq's workers and two runs' tasks.

    .venv/bin/python bench/flower_screenshot.py [--out-dir docs]    # flower-workers.png, flower-tasks.png

Starts a private Redis, two workers as docker-compose.yml names them (llm@host on crewq.turns,
tools@host on crewq.tools and crewq.control), Flower with basic auth, runs the demo crew twice,
then has headless Chromium (Debian's /usr/bin/chromium) log in and capture the page. Everything is
on 127.0.0.1 and is stopped at the end. (tests/test_fleet.py makes the same check on the compose
fleet when Chromium is installed; this script makes the README's pictures.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crewq.config.settings import Settings  # noqa: E402
from crewq.scheduler.local_redis import LocalRedis, free_port  # noqa: E402
from crewq.scheduler.runs import Client  # noqa: E402
from crewq.workers.app import create_app  # noqa: E402

USER, PASSWORD = "admin", "screenshot-only"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", default=str(ROOT / "docs"))
    parser.add_argument("--size", default="1400,800")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no chromium: apt-get install -y chromium")

    procs: list[subprocess.Popen] = []
    with LocalRedis() as server, tempfile.TemporaryDirectory(prefix="crewq-shot-") as tmp:
        env = {**os.environ, "CREWQ_REDIS_URL": server.url}
        env = {k: v for k, v in env.items() if not k.startswith("FLOWER_")}
        logs = open(Path(tmp) / "fleet.log", "wb")
        try:
            for name, queues in (("llm", "crewq.turns"), ("tools", "crewq.tools,crewq.control")):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "crewq", "worker", "-Q", queues, "-c", "8", "-n", f"{name}@%h",
                     "-l", "WARNING"], env=env, cwd=ROOT, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "crewq.workers.celery_app", "flower", f"--port={port}",
                 "--address=127.0.0.1", f"--basic-auth={USER}:{PASSWORD}"],
                env=env, cwd=ROOT, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
            app = create_app(Settings(redis_url=server.url))
            wait(lambda: len(app.control.ping(timeout=0.5)) >= 2, 60, "workers")
            wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2).status == 200,
                 30, "flower")
            client = Client(app)
            for topic in ("tides", "eclipses"):
                client.wait(client.submit(ROOT / "config" / "crews" / "demo.yaml", {"topic": topic}), timeout=60)
            time.sleep(2)  # let Flower's event stream catch up with the finished tasks
            for page in ("workers", "tasks"):
                out = Path(args.out_dir) / f"flower-{page}.png"
                subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/chrome-{page}",
                                f"--window-size={args.size}", "--virtual-time-budget=5000", f"--screenshot={out}",
                                f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/{page}"],
                               check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                print(f"wrote {out}")
            app.close()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            logs.close()


if __name__ == "__main__":
    main()
