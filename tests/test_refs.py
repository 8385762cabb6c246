"""The task messages' argument layouts, named once (`crewq.workers.refs`)."""

from __future__ import annotations

import inspect

from crewq.scheduler.advance import advance
from crewq.workers.refs import ADVANCE_TASK, TOOL_TASK, TURN_TASK, AdvanceRef, ToolRef, TurnRef, ref_of
from crewq.workers.tool_call import tool_call
from crewq.workers.turn import agent_turn


def test_the_tasks_take_their_arguments_in_the_refs_order():
    for task, ref, skip in ((agent_turn, TurnRef, 0), (tool_call, ToolRef, 0), (advance, AdvanceRef, 1)):
        params = list(inspect.signature(task.run).parameters)[skip:]  # advance: the header's results first
        assert params == ref.names(), task.name


def test_arguments_decode_by_name_whatever_the_task():
    assert ref_of(TURN_TASK, ["r", "writer", 2, 1]) == TurnRef("r", "writer", turn=2, attempt=1)
    assert ref_of(TURN_TASK, ["r", "writer"]) == TurnRef("r", "writer", 0, 0)  # the task's defaults
    tool = ref_of(TOOL_TASK, ["r", "writer", 2, 1, 3])
    assert tool == ToolRef("r", "writer", turn=2, attempt=1, index=3)
    assert tool.describe() == "writer tool call 3 of turn 2"
    wave = ref_of(ADVANCE_TASK, [[{"status": "ok"}], "r", 4])  # a chord body: the header's results first
    assert wave == AdvanceRef("r", 4) and wave.agent_id is None and wave.describe() == "advance of wave 4"
    assert ref_of(ADVANCE_TASK, ["r", 4]) == AdvanceRef("r", 4)  # as a liveness record keeps it
    assert ref_of("crewq.submit", ["yaml"]) is None
    assert ref_of(TOOL_TASK, ["r", "writer"]) is None  # not its layout


def test_refs_are_sent_as_plain_tuples():
    assert type(TurnRef("r", "a", 1, 0).args()) is tuple and TurnRef("r", "a", 1, 0).args() == ("r", "a", 1, 0)
