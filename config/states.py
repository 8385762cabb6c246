"""The statuses of a run and of an agent, as stored in the ledger and shown by `status --json`.

    run:    queued ──► running ──► succeeded | failed | cancelled     (a resumed run is running again)
    agent:  waiting ──► running ──► succeeded | failed | skipped | cancelled
                           ▲  └──► (restart by policy: waiting again) ──┘

str enums: each member *is* its string, so Redis, JSON and Lua see the same values (the ledger's
Lua scripts get them as arguments, never spelled out).
"""

from __future__ import annotations

from enum import Enum


class _Status(str, Enum):
    def __str__(self) -> str:  # "running", not "RunStatus.RUNNING", in messages and f-strings
        return self.value


class RunStatus(_Status):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class AgentStatus(_Status):
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def settled(self) -> bool:
        """The attempt is over: only a restart (a new attempt) changes it."""
        return self not in (AgentStatus.WAITING, AgentStatus.RUNNING)


# Tuples, in declaration order: the Lua scripts get them as ARGV.
TERMINAL_RUN = tuple(s for s in RunStatus if s.terminal)
SETTLED_AGENT = tuple(s for s in AgentStatus if s.settled)
