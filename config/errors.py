"""Every exception crewq raises on purpose, under one root.

    CrewqError                          permanent  retryable
    ├── ConfigError                     yes        no     a user mistake in a crew file, an input or the environment
    │   ├── CycleError                  yes        no     depends_on edges form a cycle (the path is named)
    │   └── MissingEnvError             yes        no     an `env:VAR` reference with no value where it is resolved
    ├── ToolServerUnavailable           no         no     a tool server (MCP) cannot be reached or started here
    ├── ProviderError                   4xx: yes   no     an LLM provider failed (HTTP status, error type, request id;
    │                                   config: yes        type=config: no model, no base_url)
    │   └── TransientProviderError      no         yes    worth retrying later (refused, timeouts, 429, 5xx); retry_after
    ├── ToolError                       no         no     a tool failed; the model is told and the agent goes on
    └── RunError                        no         no     a run failed, was cancelled or timed out (client side)

Two properties say what can fix a failure, so callers never keep lists of classes:
`permanent`: no restart can (a refused key, a bad request, a wrong path or model, a missing variable,
a mistake in the crew file): the agent fails at once. `retryable`: waiting can, inside the same turn
(`retry_limit` caps how often, e.g. a refused connection is retried only twice). Neither: a restart
by the agent's policy may. User mistakes, provider failures and run failures are different families
so that callers can catch one without swallowing the others. Retry signals are Celery's own.
"""

from __future__ import annotations

__all__ = ["CrewqError", "ConfigError", "CycleError", "MissingEnvError", "ToolServerUnavailable",
           "ProviderError", "TransientProviderError", "ToolError", "RunError"]


class CrewqError(Exception):
    """Root of every crewq exception."""

    permanent: bool = False  # no restart can fix it: fail the agent at once
    retryable: bool = False  # worth another try inside the same turn, after a wait
    retry_limit: int | None = None  # at most this many such tries (None: the agent's max_retries)


class ConfigError(CrewqError):
    """A user mistake. `str()` names the file, the line and the key path when they are known."""

    permanent = True
    problems: list[ConfigError]  # set by `combine`: every problem found, so the user fixes all at once

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, hint: str | None = None):
        self.message, self.file, self.line, self.key, self.hint = message, file, line, key, hint
        super().__init__(self._render())

    @staticmethod
    def combine(problems: list[ConfigError]) -> ConfigError:
        """The first problem, carrying every one (its message: a line each)."""
        first = problems[0]
        if len(problems) > 1:
            first.args = ("\n".join(str(p) for p in problems),)
        first.problems = problems
        return first

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


class ToolServerUnavailable(CrewqError):
    """A configured tool server (MCP) cannot be reached or started from this process. Not a user
    mistake: the crew file may be right, and a restart, or another worker, may succeed."""

    def __init__(self, message: str, *, key: str | None = None):
        self.message, self.key = message, key
        super().__init__(f"{key}: {message}" if key else message)


class ProviderError(CrewqError):
    """An LLM provider failed. Never carries the API key or the conversation."""

    def __init__(self, message: str, *, provider: str, status: int | None = None,
                 error_type: str | None = None, request_id: str | None = None):
        self.provider, self.status, self.error_type, self.request_id = provider, status, error_type, request_id
        # A 4xx that is not a retry signal (those are transient) says the same request fails again:
        # 400 rejected, 401/403 the key, 404 the path or the model; so does a provider's own "config"
        # error (no model, no base_url): nothing was sent. Malformed replies may pass.
        self.permanent = (status is not None and 400 <= status < 500 and not self.retryable) or error_type == "config"
        details = ", ".join(f"{k}={v}" for k, v in
                            (("status", status), ("type", error_type), ("request_id", request_id)) if v)
        super().__init__(f"{provider}: {message}" + (f" [{details}]" if details else ""))


class TransientProviderError(ProviderError):
    """A provider failure that may pass: retry after `retry_after` seconds (None: use backoff),
    at most `retry_limit` times inside the turn (None: the agent's max_retries)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, retry_limit: int | None = None, **kw):
        self.retry_after, self.retry_limit = retry_after, retry_limit
        super().__init__(message, **kw)


class ToolError(CrewqError):
    """A tool failed. The message goes back to the model as the tool's error result."""


class RunError(CrewqError):
    """A run ended without output: failed, cancelled or past its deadline."""

    def __init__(self, message: str, *, run_id: str, status: str):
        self.run_id, self.status = run_id, status
        super().__init__(f"run {run_id} {status}: {message}")
