"""A `crewq.tool_call` message that no turn sent (anyone who can send a task can send one) runs
nothing: an ended run's calls are history, an index is one of the turn's calls, ids are ids."""

from __future__ import annotations

from pathlib import Path

from crewq.workers.app import TOOL_TASK

from helpers import run_crew, stored_result, write_crew

CREW = """
    runtime: {llm_provider: scripted}
    tools: [{name: write_file, base_dir: out}]
    agents:
      - id: a
        tools: [write_file]
        script:
          - tool_calls: [{name: write_file, arguments: {path: note.txt, content: "once"}}]
          - text: "wrote {tool_results}"
    """


def tool_calls_seen(app, run_id: str) -> int:
    return sum(1 for e in app.ledger.events(run_id) if e.get("type") == "tool_call")


def send(app, *args) -> dict:
    return stored_result(app, app.send_task(TOOL_TASK, args=list(args)).id)


def test_a_tool_call_no_turn_sent_runs_nothing(app, worker, tmp_path: Path):
    (tmp_path / "out").mkdir()
    done = run_crew(app, write_crew(tmp_path, CREW))
    assert done.status == "succeeded", done
    run_id, note = done.run_id, tmp_path / "out" / "note.txt"
    assert tool_calls_seen(app, run_id) == 1
    note.unlink()
    # The run has ended: its last call is not run again by a negative index, and no call starts.
    assert "index must be an integer >= 0, not -1" in send(app, run_id, "a", 0, 0, -1)["refused"]
    for turn, index in ((0, 1), (1, 0)):
        reply = send(app, run_id, "a", turn, 0, index)
        assert reply["is_error"] and reply["refused"] == f"run {run_id} is succeeded", reply
    assert send(app, run_id, "a", 0, 0, 0)["repeated"]  # its real call (a redelivery): recorded, not run again
    # While it runs: only the turn's own calls, and only integer arguments.
    app.ledger.set_run(run_id, status="running")
    for args, reason in [((0, 0, 999), "asked for 1 tool calls, so there is no call 999"),
                         ((0, 0, -1), "index must be an integer >= 0, not -1"),
                         ((0, 0, "x"), "index must be an integer >= 0, not 'x'"),
                         ((0, 0, True), "index must be an integer >= 0, not True"),
                         ((0, 0, 0.0), "index must be an integer >= 0, not 0.0"),
                         (("0", 0, 0), "turn must be an integer >= 0, not '0'"),
                         ((7, 0, 0), "turn 7 (attempt 0) of agent 'a' asked for 0 tool calls")]:
        reply = send(app, run_id, "a", *args)
        assert reply["is_error"] and reason in reply["refused"], (args, reply)
    assert send(app, run_id, ["a"], 0, 0, 0)["refused"] == "agent_id must be a string, not list"
    assert send(app, "no-such-run", "a", 0, 0, 0)["refused"] == "run no-such-run is unknown"
    assert send(app, run_id, "a", 0, 0, 0)["repeated"]  # its real call: recorded, not run again
    assert tool_calls_seen(app, run_id) == 1 and not note.exists()
