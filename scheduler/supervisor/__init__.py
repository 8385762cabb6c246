"""The supervisor: restart policies and budgets, requeues from dead workers, deadlines."""

from .policy import Decision, decide
from .service import Supervisor, SupervisorThread

__all__ = ["Decision", "Supervisor", "SupervisorThread", "decide"]
