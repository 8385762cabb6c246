"""What crewq's task messages carry: each task's name and argument layout, named once.

Messages carry ids, never conversations (DESIGN.md). One order for the two work tasks, from the
run down: run, agent, turn, attempt (and a tool call's index in its turn's reply):

    crewq.agent_turn(run_id, agent_id, turn, attempt)          TurnRef
    crewq.tool_call(run_id, agent_id, turn, attempt, index)    ToolRef
    crewq.advance([results], run_id, wave)                     AdvanceRef (a chord body: results first)

Whoever reads a message's arguments (the liveness record, log lines, the supervisor's redelivery,
repair and stall checks) decodes them with `ref_of`, not by position.
"""

from __future__ import annotations

from dataclasses import MISSING, astuple, dataclass, fields
from typing import Sequence

TURN_TASK = "crewq.agent_turn"
TOOL_TASK = "crewq.tool_call"
ADVANCE_TASK = "crewq.advance"
SUBMIT_TASK = "crewq.submit"


@dataclass(frozen=True)
class _Ref:
    def args(self) -> tuple:
        """The message's arguments: a plain tuple (Flower shows `crewq.agent_turn('9b1e…', 'writer', 2, 0)`)."""
        return astuple(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def required(cls) -> int:
        return sum(1 for f in fields(cls) if f.default is MISSING)

    def problem(self) -> str | None:
        """Why these arguments cannot be a message of ours (anyone who can send a task may send one):
        ids that are not strings, numbers that are not integers >= 0; None when they fit."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "str" and not isinstance(value, str):
                return f"{f.name} must be a string, not {type(value).__name__}"
            if f.type == "int" and (type(value) is not int or value < 0):  # (a bool is no count)
                return f"{f.name} must be an integer >= 0, not {value!r}"
        return None


@dataclass(frozen=True)
class TurnRef(_Ref):
    run_id: str
    agent_id: str
    turn: int = 0  # the task's own defaults: a run's first turn, first attempt
    attempt: int = 0

    def describe(self) -> str:
        return f"{self.agent_id} turn {self.turn}"


@dataclass(frozen=True)
class ToolRef(_Ref):
    run_id: str
    agent_id: str
    turn: int
    attempt: int
    index: int

    def describe(self) -> str:
        return f"{self.agent_id} tool call {self.index} of turn {self.turn}"


@dataclass(frozen=True)
class AdvanceRef(_Ref):
    run_id: str
    wave: int

    @property
    def agent_id(self) -> None:
        return None  # an advance is about a wave, not an agent

    def describe(self) -> str:
        return f"advance of wave {self.wave}"


Ref = TurnRef | ToolRef | AdvanceRef
LAYOUTS: dict[str, type[TurnRef] | type[ToolRef] | type[AdvanceRef]] = {
    TURN_TASK: TurnRef, TOOL_TASK: ToolRef, ADVANCE_TASK: AdvanceRef}


def ids_only(name: str, args: Sequence) -> list:
    """A message's arguments without a chord body's leading header results: ids are enough."""
    values = list(args or ())
    if name == ADVANCE_TASK and values and isinstance(values[0], (list, tuple)):
        values = values[1:]
    return values


def ref_of(name: str, args: Sequence) -> Ref | None:
    """The ids a message of task `name` carries; None for a task that is not one of these three,
    or arguments that do not fit its layout."""
    layout = LAYOUTS.get(name)
    values = ids_only(name, args)
    if layout is None or not layout.required() <= len(values) <= len(layout.names()):
        return None
    return layout(*values)
