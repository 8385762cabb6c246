"""The CLI's words: one error style, help on every option, messages that name what to do."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from crewq.scheduler.cli import main
from crewq.workers.tools.mcp import forget_servers

from helpers import write_crew


def every_command(group: click.Group, path: str = "crewq"):
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from every_command(command, f"{path} {name}")


def test_every_option_has_help_text():
    missing = [f"{path} {'/'.join(param.opts)}" for path, command in every_command(main)
               for param in command.params if isinstance(param, click.Option) and not param.help]
    assert missing == []


@pytest.mark.parametrize("args, message", [
    (["run"], "crewq: error: Missing argument 'FILE'."),
    (["rnu"], "crewq: error: No such command 'rnu'. Did you mean 'run'?"),
    (["plan", "x.yaml", "--format", "png"], "crewq: error: Invalid value for '--format': 'png' is not one of"),
    (["run", "x.yaml", "-i", "novalue"], "crewq: error: Invalid value for --input: 'novalue' is not key=value"),
])
def test_clicks_own_usage_errors_speak_in_crewqs_style(args, message):
    result = CliRunner().invoke(main, args, prog_name="crewq")
    assert result.exit_code == 2
    first, *rest = result.output.splitlines()
    assert first.startswith(message), result.output
    assert "Error:" not in result.output and rest[-1].startswith("Try 'crewq")


def test_beat_names_the_variable_when_no_folder_is_given(monkeypatch):
    monkeypatch.delenv("CREWQ_CREWS_DIR", raising=False)
    result = CliRunner().invoke(main, ["beat"])
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == "crewq: error: no crews folder: pass --crews-dir DIR or set CREWQ_CREWS_DIR"


def test_beat_list_says_when_there_is_no_schedule(tmp_path):
    write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        agents: [{id: a, script: [{text: x}]}]
        """)
    result = CliRunner().invoke(main, ["beat", "--list", "--crews-dir", str(tmp_path)])
    assert result.exit_code == 0 and result.output == f"no crew under {tmp_path} has a schedule\n"


def test_tools_list_reports_a_dead_mcp_server_and_lists_the_rest(tmp_path):
    path = write_crew(tmp_path, """
        runtime: {llm_provider: scripted}
        tools:
          - {name: mcp, extra: {server_name: docs, server_url: "http://127.0.0.1:9/mcp"}}
          - {name: echo, python: "fakes.sample_tools:slow_echo"}
        agents:
          - {id: a, tools: [docs, echo], script: [{text: x}]}
        """)
    try:
        result = CliRunner().invoke(main, ["tools", "list", str(path)])
    finally:
        forget_servers()
    assert result.exit_code == 1
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert {"read_file", "wikipedia", "echo"} <= set(rows)
    assert "mcp docs" in rows["mcp"] and "UNAVAILABLE: " in rows["mcp"] and "127.0.0.1:9" in rows["mcp"]
    assert result.output.splitlines()[-1] == "crewq: error: 1 tool unavailable: mcp docs"


def test_the_cli_starts_without_the_heavy_imports():
    """`crewq run` prints what it starts before Celery, pydantic and the providers are imported
    (they take a second or more), so the first line comes at once."""
    import subprocess
    import sys
    code = ("import sys; from crewq.scheduler.cli import main; "
            "print(sorted(m for m in ('celery', 'pydantic', 'yaml', 'httpx', 'rich', 'crewq.workers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_validate_checks_a_crew_without_celery_redis_or_the_tools_libraries():
    """`crewq validate` reads the tool and provider names, not their modules: Celery, redis, httpx,
    bs4 and jsonschema stay unimported (they were most of its start-up)."""
    import subprocess
    import sys
    from pathlib import Path
    demo = Path(__file__).resolve().parent.parent / "config" / "crews" / "demo.yaml"
    heavy = ('celery', 'kombu', 'redis', 'httpx', 'bs4', 'jsonschema', 'crewq.workers.app',
             'crewq.workers.tools.web_search', 'crewq.workers.tools.mcp')
    code = ("import sys; from crewq.scheduler.cli import main; "
            "main(['validate', sys.argv[1]], standalone_mode=False); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(demo)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{demo}: ok (4 agents in 3 waves)", "[]"]
