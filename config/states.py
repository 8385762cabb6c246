"""The statuses of a run and of an agent, as stored in the ledger and shown by `status --json`.

    run:    running ──► succeeded | failed | cancelled          (a resumed run is running again)
    agent:  pending ──► running ──► succeeded | failed | skipped | cancelled
                           ▲  └──► (restart by policy) ──┘

str enums: each member *is* its string, so Redis, JSON and Lua see the same values.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self is not RunStatus.RUNNING


class AgentStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL_RUN = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
