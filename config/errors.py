"""Every exception crewq raises on purpose, under one root.

    CrewqError
    ├── ConfigError            a user mistake in a crew file, an input or the environment
    │   ├── CycleError         depends_on edges form a cycle (the path is named)
    │   └── MissingEnvError    an `env:VAR` reference with no value, raised where it is resolved
    ├── ProviderError          an LLM provider failed (HTTP status, error type, request id)
    │   └── TransientProviderError   worth retrying later (429, 5xx, timeouts); carries retry_after
    ├── ToolError              a tool failed; the model is told and the agent goes on
    └── RunError               a run failed, was cancelled or timed out (client side)

User mistakes, provider failures and run failures are different families so that callers can
catch one without swallowing the others. Retry signals are Celery's own (`Retry`), not ours.
"""

from __future__ import annotations

__all__ = ["CrewqError", "ConfigError", "CycleError", "MissingEnvError", "ToolServerUnavailable",
           "ProviderError", "TransientProviderError", "ToolError", "RunError"]


class CrewqError(Exception):
    """Root of every crewq exception."""


class ConfigError(CrewqError):
    """A user mistake. `str()` names the file, the line and the key path when they are known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, hint: str | None = None):
        self.message, self.file, self.line, self.key, self.hint = message, file, line, key, hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        parts = [p for p in (where, self.key) if p]
        text = (": ".join(parts) + ": " if parts else "") + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class CycleError(ConfigError):
    """depends_on edges form a cycle; `cycle` lists the agents on it, first repeated last."""

    def __init__(self, cycle: list[str], **where):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " → ".join(cycle), **where)


class MissingEnvError(ConfigError):
    """An `env:VAR` reference has no value in the process that resolves it."""

    def __init__(self, var: str, *, key: str | None = None):
        self.var = var
        super().__init__(f"environment variable {var} is not set (referenced as env:{var})", key=key)


class ToolServerUnavailable(ConfigError):
    """A configured tool server (MCP) cannot be reached or started from this process. The crew file
    may be right: a restart, or another worker, may succeed."""


class ProviderError(CrewqError):
    """An LLM provider failed. Never carries the API key or the conversation."""

    def __init__(self, message: str, *, provider: str, status: int | None = None,
                 error_type: str | None = None, request_id: str | None = None):
        self.provider, self.status, self.error_type, self.request_id = provider, status, error_type, request_id
        details = ", ".join(f"{k}={v}" for k, v in
                            (("status", status), ("type", error_type), ("request_id", request_id)) if v)
        super().__init__(f"{provider}: {message}" + (f" [{details}]" if details else ""))


class TransientProviderError(ProviderError):
    """A provider failure that may pass: retry after `retry_after` seconds (None: use backoff)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ToolError(CrewqError):
    """A tool failed. The message goes back to the model as the tool's error result."""


class RunError(CrewqError):
    """A run ended without output: failed, cancelled or past its deadline."""

    def __init__(self, message: str, *, run_id: str, status: str):
        self.run_id, self.status = run_id, status
        super().__init__(f"run {run_id} {status}: {message}")
