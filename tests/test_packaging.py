"""The distribution installs one top-level name, `crewq`, and leaves an app's own `config` and
`workers` packages alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import crewq

from conftest import ROOT

pytestmark = pytest.mark.slow  # builds a wheel and installs it

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    had_build = (ROOT / "build").exists()
    # No build isolation and no deps: nothing is fetched, the venv's setuptools builds it.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], check=True, capture_output=True, text=True, timeout=180)
    if not had_build:  # setuptools builds in the checkout; leave it as it was
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    # A folder of data under a package that `packages` does not list: setuptools warns, and will refuse.
    assert "is absent from the `packages` configuration" not in proc.stdout + proc.stderr
    (found,) = out.glob("crewq-*.whl")
    return found


def test_every_package_folder_of_the_checkout_is_in_the_wheel(wheel):
    files = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("config", "workers", "scheduler"):
        for init in (ROOT / folder).rglob("__init__.py"):
            installed = "crewq/" + init.relative_to(ROOT).as_posix()
            assert installed in files, f"{init.parent} is not in the wheel: add it to pyproject's packages"


def test_the_wheel_has_one_top_level_name(wheel):
    names = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {n for n in names if not n.endswith(".dist-info")} == {"crewq"}
    files = set(zipfile.ZipFile(wheel).namelist())
    assert {"crewq/py.typed", "crewq/config/crews/demo.yaml", "crewq/config/templates/crew.yaml",
            "crewq/scheduler/supervisor/service.py", "crewq/workers/tools/mcp/session.py",
            "crewq/scheduler/cli/__init__.py", "crewq/scheduler/cli/lazy.py"} <= files


def test_an_app_with_its_own_config_and_workers_packages_imports_both(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=180)
    app = tmp_path / "app"
    for pkg in ("config", "workers"):
        (app / pkg).mkdir(parents=True)
        (app / pkg / "__init__.py").write_text(f"OWNER = 'app {pkg}'\n")
    (app / "config" / "settings.py").write_text("class Settings: pass\n")
    (app / "main.py").write_text(textwrap.dedent("""
        import config, workers
        from config.settings import Settings
        from crewq import Client, run, __version__, RunStatus
        import crewq.config.settings, crewq.workers.app
        print(config.OWNER, workers.OWNER, Settings.__module__, __version__, RunStatus.SUCCEEDED,
              crewq.__file__.startswith(%r))
    """ % str(site)))
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, str(app / "main.py")], cwd=app, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["app", "config", "app", "workers", "config.settings", crewq.__version__,
                                   "succeeded", "True"]


def test_python_dash_m_crewq_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "crewq", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Usage:" in proc.stdout and "run" in proc.stdout, proc.stderr
