"""`crewq run`'s progress: the state model from events, the plain lines, the live table (rendered
to a recording console: no terminal needed), and log lines held out of the view."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from crewq.scheduler.live import LiveProgress, table
from crewq.scheduler.progress import HeldLogs, Progress, RunView, Watch

T0 = 1_000_000.0
WAVES = [["planner"], ["researcher", "outliner"], ["writer"]]
ERROR = "anthropic: overloaded: a long message the provider sends [status=529]"


def ev(kind: str, agent: str | None = None, at: float = 0.0, **data) -> dict:
    return {"id": "0-0", "type": kind, "agent": agent, "ts": T0 + at, **data}


RUN = [
    ev("run_started", at=1.0, agents=["planner", "researcher", "outliner", "writer"]),
    ev("wave_emitted", at=1.0, wave=0, agents=["planner"]),
    ev("turn_started", "planner", 1.1, turn=0, host="w1", attempt=0, retries=0),
    ev("llm_call", "planner", 1.4, turn=0, input_tokens=100, output_tokens=20, cost_usd=0.0006, tool_calls=[]),
    ev("agent_succeeded", "planner", 1.4, turns=1, attempt=0),
    ev("wave_emitted", at=1.5, wave=1, agents=["researcher", "outliner"]),
    ev("turn_started", "researcher", 1.5, turn=0, host="w1", attempt=0, retries=0),
    ev("turn_started", "outliner", 1.5, turn=0, host="w2", attempt=0, retries=0),
    ev("llm_call", "researcher", 1.7, turn=0, input_tokens=50, output_tokens=5, cost_usd=None,
       tool_calls=["read_file", "read_file", "list_files"]),
    ev("tool_call", "researcher", 1.7, turn=0, index=1, name="read_file"),
    ev("tool_result", "researcher", 1.8, turn=0, index=1, name="read_file", is_error=False),
]


def view_after(events: list[dict]) -> RunView:
    view = RunView("demo", WAVES, started=T0)
    for event in events:
        view.apply(event)
    return view


def test_the_state_model_follows_the_events():
    view = view_after(RUN)
    assert view.wave == 1 and view.status == "running"
    planner, researcher, outliner, writer = (view.agents[a] for a in ("planner", "researcher", "outliner", "writer"))
    assert (planner.state, planner.turn, planner.input_tokens, planner.output_tokens) == ("done", 1, 100, 20)
    assert planner.cost_text() == "$0.0006" and planner.elapsed(T0 + 9) == pytest.approx(0.3)
    # Two of three tool calls still out; a call to a model without a price makes the cost unknown.
    assert researcher.state == "tools" and researcher.tools == {0: "read_file", 2: "list_files"}
    assert researcher.cost_text() == "unknown"
    assert outliner.state == "running" and outliner.host == "w2" and outliner.elapsed(T0 + 2.5) == pytest.approx(1.0)
    assert writer.state == "waiting" and writer.wave == 2 and writer.elapsed(T0 + 9) is None
    assert view.header() == "demo: 4 agents in 3 waves"


def test_a_failure_is_reported_once_with_its_decision():
    view = RunView("one", [["a"], ["b"]], started=T0)
    lines = []
    for event in [
        ev("turn_started", "a", 1, turn=0, attempt=0, host="w1"),
        ev("llm_retry", "a", 1, turn=0, error=ERROR, countdown=0.5, retries=1),
        ev("turn_started", "a", 2, turn=0, attempt=0, host="w1", retries=1),
        ev("agent_failed", "a", 2, turn=0, attempt=0, error=ERROR + " (after 2 tries)"),
        ev("decision", "a", 2, action="restart", reason="restart 1 of 1 within 60s", error=ERROR),
        ev("turn_started", "a", 3, turn=0, attempt=1, host="w2"),
        ev("llm_retry", "a", 3, turn=0, error=ERROR, countdown=0.5, retries=1),
        ev("agent_failed", "a", 4, turn=0, attempt=1, error=ERROR + " (after 2 tries)"),
        ev("decision", "a", 4, action="give_up", reason="restart budget spent: 1 restart within 60s"),
        ev("agent_skipped", "b", 4, because="a"),
        ev("run_finished", at=4, status="failed", error="agent a failed after 2 attempts: " + ERROR + " (after 2 tries)"),
    ]:
        lines += [text for _, text in view.apply(event)]
    assert sum(ERROR in line for line in lines) == 1  # the long message, once
    assert lines == [
        "running  turn 1 on w1",
        f"LLM retry in 0.5s: {ERROR}",
        "running  turn 1 on w1, retry 1",
        "FAILED   attempt 1: the error retried above (after 2 tries)",
        "supervisor: restart (restart 1 of 1 within 60s)",
        "running  turn 1 on w2, attempt 2",
        "LLM retry in 0.5s: the same error",
        "FAILED   attempt 2: the same error as attempt 1",
        "supervisor: give up (restart budget spent: 1 restart within 60s)",
        "skipped  (a failed)",
        "failed: agent a failed after 2 attempts (error above)",
    ]
    assert view.agents["a"].state == "failed" and view.agents["b"].state == "skipped"


def test_plain_lines_are_timed_from_the_command_start():
    out = io.StringIO()
    progress = Progress(RunView("demo", WAVES, started=T0), out)
    for event in RUN[:5]:
        progress(event)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("planner     waiting  (wave 0)") and lines[3].endswith("writer      waiting  (wave 2)")
    assert lines[4:] == ["   1.0s  run         wave 0: planner",
                         "   1.1s  planner     running  turn 1 on w1",
                         "   1.4s  planner     done     after 1 turn, 100/20 tokens, $0.0006"]


def test_verbose_adds_tool_arguments_and_results_cut_short():
    class Ledger:  # the two reads ToolDetails makes
        def tool_call_state(self, run_id, agent, attempt, turn, index):
            assert (run_id, agent, attempt, turn, index) == ("r1", "researcher", 0, 0, 1)
            reply = {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.md"}},
                                    {"name": "read_file", "arguments": {"path": "tides.md"}}]}
            return {"content": "Tides are " + "very " * 100 + "long.", "is_error": False}, reply

    out = io.StringIO()
    progress = Watch(plain=True, verbose=True, started=T0).start("demo", WAVES, Ledger(), "r1", out=out)
    for event in RUN:
        progress(event)
    text = out.getvalue()
    assert 'researcher  → read_file {"path": "tides.md"}' in text
    result = next(line for line in text.splitlines() if "←" in line)
    assert "← read_file Tides are very very" in result and result.endswith("… (515 chars)")
    assert len(result.split("← read_file ")[1]) < 180


def test_the_live_table_shows_every_agent_with_its_wave_state_and_tools_in_flight():
    console = Console(record=True, width=120, force_terminal=False)
    console.print(table(view_after(RUN), now=T0 + 2.0))
    text = console.export_text()
    assert "demo: 4 agents in 3 waves  ·  running wave 1 (last: 2)" in text
    rows = {line.split()[1]: line.split() for line in text.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])}
    assert rows["planner"] == ["0", "planner", "done", "1", "100/20", "$0.0006", "0.3s"]
    assert rows["researcher"] == ["1", "researcher", "tools", "1", "read_file,", "list_files", "50/5", "unknown", "0.5s"]
    assert rows["outliner"] == ["1", "outliner", "running", "1", "0/0", "$0.0000", "0.5s"]
    assert rows["writer"] == ["2", "writer", "waiting"]
    assert "2.0s since start" in text


def test_live_progress_keeps_failures_in_the_scrollback_and_not_the_waves():
    console = Console(record=True, width=200, force_terminal=False)
    live = LiveProgress(RunView("one", [["a"]], started=T0), console=console)
    for event in [ev("wave_emitted", at=1, wave=0, agents=["a"]), ev("turn_started", "a", 1, turn=0, host="w"),
                  ev("agent_failed", "a", 2, turn=0, attempt=0, error="boom"),
                  ev("decision", "a", 2, action="give_up", reason="a configuration error"),
                  ev("run_finished", at=2, status="failed", error="agent a failed after 1 attempt: boom")]:
        live(event)
    live.close()
    text = console.export_text()
    assert text.count("boom") == 1 and "FAILED   attempt 1: boom" in text
    assert "supervisor: give up (a configuration error)" in text
    assert "run  failed: agent a failed after 1 attempt (error above)" in text
    assert "wave 0: a" not in text  # the table shows the waves


def test_a_terminal_gets_the_live_view_and_a_pipe_plain_lines(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("TERM", "xterm-256color")
    live = Watch(started=T0).start("d", WAVES, None, "r", out=Tty())
    live.close()
    assert isinstance(live, LiveProgress)
    assert isinstance(Watch(started=T0).start("d", WAVES, None, "r", out=io.StringIO()), Progress)
    assert isinstance(Watch(plain=True, started=T0).start("d", WAVES, None, "r", out=Tty()), Progress)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(Watch(started=T0).start("d", WAVES, None, "r", out=Tty()), Progress)


def test_log_lines_are_held_during_the_view_and_printed_once_after(capsys):
    noisy = logging.getLogger("crewq.workers.llm.breaker")
    with HeldLogs() as held:
        for _ in range(3):
            noisy.warning("breaker %s open for %gs", "anthropic:claude", 30)
        logging.getLogger("celery.worker").info("not kept: below WARNING")
    assert capsys.readouterr().err == ""
    out = io.StringIO()
    held.flush_to(out)
    assert out.getvalue().splitlines() == [
        "log during the run (3 lines, WARNING and above):",
        "  WARNING crewq.workers.llm.breaker: breaker anthropic:claude open for 30s  (×3)"]


def test_verbose_run_on_a_fleet_shows_tool_arguments_and_results_from_the_ledger(worker, redis_url, tmp_path):
    from click.testing import CliRunner

    from crewq.scheduler.cli import main

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "tides.md").write_text("The Moon pulls the sea.")
    path = tmp_path / "crew.yaml"
    path.write_text("""
runtime: {name: reader, llm_provider: scripted}
task: {output_file: out/answer.md}
tools: [{name: read_file, base_dir: notes}]
agents:
  - id: a
    tools: [read_file]
    script:
      - tool_calls: [{name: read_file, arguments: {path: tides.md}}, {name: read_file, arguments: {path: nope.md}}]
      - text: "read it"
""")
    result = CliRunner().invoke(main, ["run", str(path), "-v"], env={"CREWQ_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"crewq: running {path} on the fleet"
    assert lines[1] == "reader: 1 agent in 1 wave; on the fleet"
    shown = [line.split("  ", 2)[-1].strip() for line in lines if "→" in line or "←" in line]
    assert sorted(shown) == sorted(['a    → read_file {"path": "nope.md"}', 'a    → read_file {"path": "tides.md"}',
                             "a    ← read_file The Moon pulls the sea.",
                             "a    ← read_file error: read_file failed: no such file: nope.md"])
    assert f"wrote {tmp_path / 'out' / 'answer.md'}" in lines
