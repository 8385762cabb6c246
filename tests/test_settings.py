"""Settings: every CREWQ_* variable is a typed field with a documented default, read in one place."""

from __future__ import annotations

import re
import subprocess
import sys
import typing

import pytest

from crewq.config.durations import parse_duration
from crewq.config.errors import ConfigError
from crewq.config.settings import NOT_FROM_ENV, Settings, env_var

from conftest import ROOT


def readme_settings() -> dict[str, str]:
    """The README's settings table: variable → its default cell."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Settings", 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^\| `(CREWQ_\w+)` \| ([^|]+?) \|", section, re.M))


def test_the_readme_table_lists_every_setting_with_its_default():
    table = readme_settings()
    fields = {env_var(name): field for name, field in Settings.model_fields.items() if name not in NOT_FROM_ENV}
    # CREWQ_POLICY is read by Policy.from_env (a name or a file), not parsed as a plain field.
    assert set(table) == set(fields) | {"CREWQ_POLICY"}
    del table["CREWQ_POLICY"]
    for var, cell in table.items():
        default = fields[var].default
        if cell == "unset":
            assert default is None, var
        elif float in (typing.get_args(fields[var].annotation) or (fields[var].annotation,)):
            assert parse_duration(cell.strip("`")) == default, var
        else:
            assert cell.strip("`") == str(default), var


def test_every_variable_is_read_and_typed():
    env = {"CREWQ_REDIS_URL": "redis://h:1/0", "CREWQ_PREFIX": "p", "CREWQ_RETENTION": "2d",
           "CREWQ_LLM_CONNECT_TIMEOUT": "1500ms", "CREWQ_RUN_RESTART_CAP": "3", "CREWQ_SOFT_SHUTDOWN_TIMEOUT": "1m",
           "CREWQ_LOG_FORMAT": "JSON", "CREWQ_TRACING": "console", "CREWQ_PRICING": "/p.json",
           "CREWQ_CREWS_DIR": "/crews"}
    settings = Settings.from_env(env)
    assert (settings.redis_url, settings.key_prefix, settings.retention, settings.llm_connect_timeout) == (
        "redis://h:1/0", "p", 172800.0, 1.5)
    assert (settings.run_restart_cap, settings.soft_shutdown_timeout, settings.log_format, settings.tracing) == (
        3, 60.0, "json", "console")
    assert (settings.pricing, settings.crews_dir) == ("/p.json", "/crews")
    assert Settings.from_env({"REDIS_URL": "redis://other"}).redis_url == "redis://other"
    assert Settings.from_env({"CREWQ_TRACING": "0"}).tracing == "off"
    # (Settings() takes the policy from this process's CREWQ_POLICY, which the tests set.)
    assert Settings.from_env({}).model_copy(update={"policy": Settings().policy}) == Settings()


@pytest.mark.parametrize("var, value, problem", [
    ("CREWQ_RETENTION", "a week", "CREWQ_RETENTION: 'a week': bad duration"),
    ("CREWQ_RUN_RESTART_CAP", "many", "CREWQ_RUN_RESTART_CAP: 'many': invalid literal"),
    ("CREWQ_LOG_FORMAT", "xml", "CREWQ_LOG_FORMAT: Input should be 'text' or 'json' (got 'xml')"),
    ("CREWQ_TRACING", "jaeger", "CREWQ_TRACING: Input should be 'off', 'otlp' or 'console' (got 'jaeger')"),
])
def test_a_bad_value_names_its_variable(var, value, problem):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({var: value})
    assert str(caught.value).startswith(problem)


def test_one_setting_is_read_without_the_others():
    env = {"CREWQ_PRICING": "/prices.json", "CREWQ_RETENTION": "not a duration"}
    assert Settings.env_value("pricing", env) == "/prices.json"
    assert Settings.env_value("tracing", env) == "off"  # unset: the default


def test_the_llm_connect_timeout_reaches_the_http_client():
    code = "from crewq.workers.llm import http; t = http.timeout_of(60); print(t.connect, t.read)"
    out = subprocess.run([sys.executable, "-c", code], env={"CREWQ_LLM_CONNECT_TIMEOUT": "2.5s"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2.5", "60"]
