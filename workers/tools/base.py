"""The tool interface: a name, a description, JSON-Schema parameters, and `run`.

`Tool.execute` is the one way a tool is called: it checks the arguments against the schema,
enforces the timeout, truncates long output with a visible marker, and turns every failure into
an error result for the model. A tool never crashes the worker.
"""

from __future__ import annotations

import concurrent.futures
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from crewq.config import envref
from crewq.config.durations import parse_duration
from crewq.config.errors import ConfigError, CrewqError, ToolError
from crewq.config.schema import ToolSpec

from ..llm.types import ToolSchema

if TYPE_CHECKING:
    from ..tool_llm import LLMCall

MAX_OUTPUT_CHARS = 20_000


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may know: who calls it, its crew config, and a key for side effects."""
    run_id: str
    agent_id: str
    idempotency_key: str  # the same on a redelivered call: pass it on to APIs with side effects
    source_dir: str | None = None  # the crew file's folder; relative paths start there
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # How a tool asks an LLM (summarise): in a worker, the agent's path with the run's limits and usage.
    llm: "LLMCall | None" = field(default=None, repr=False)


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False
    structured: Any = None

    def to_json(self) -> dict:
        return {"content": self.content, "is_error": self.is_error, "structured": self.structured}

    @classmethod
    def from_json(cls, data: dict) -> "ToolResult":
        return cls(data["content"], bool(data.get("is_error")), data.get("structured"))


class Tool(ABC):
    name: str
    description: str
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    timeout: float = 60.0

    def __init__(self, spec: ToolSpec | None = None):
        self.spec = spec or ToolSpec(name=self.name)
        if self.spec.description:
            self.description = self.spec.description
        if self.spec.extra.get("timeout") is not None:  # every tool: `extra.timeout`, seconds or "30s"
            try:
                self.timeout = parse_duration(self.spec.extra["timeout"])
            except ValueError as exc:  # env: included: a timeout is read when the tool is built
                raise ConfigError(f"timeout {self.spec.extra['timeout']!r}: {exc}",
                                  key=f"tools.{self.spec.name}.extra.timeout") from None

    @abstractmethod
    def run(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Do the work; return text or anything JSON can hold. Raise ToolError for a failure."""

    def warning(self) -> str | None:
        """A setting that is legal but will not do what it seems to (`crewq validate` prints it)."""
        return None

    def schema(self) -> ToolSchema:
        return ToolSchema(name=self.name, description=self.description, parameters=self.parameters)

    def setting(self, value: Any, context: ToolContext, key: str) -> Any:
        """Resolve an `env:` reference from the tool's config, here in the worker."""
        return envref.resolve(value, context.env, key=f"tools.{self.spec.name}.{key}")

    def execute(self, arguments: Any, context: ToolContext) -> ToolResult:
        if not isinstance(arguments, dict):
            return ToolResult(f"arguments must be a JSON object, got {type(arguments).__name__}", is_error=True)
        import jsonschema  # ~0.1 s to import: on the first call, not when a CLI command loads the registry
        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(arguments)"
            return ToolResult(f"arguments do not fit the schema of {self.name}: {where}: {exc.message}",
                              is_error=True)
        try:
            output = _call_with_timeout(lambda: self.run(arguments, context), self.timeout)
        except concurrent.futures.TimeoutError:
            return ToolResult(f"{self.name} timed out after {self.timeout:g}s", is_error=True)
        except CrewqError as exc:
            return ToolResult(f"{self.name} failed: {exc}", is_error=True)
        except Exception as exc:  # a tool's own bug is the model's information, not a worker crash
            return ToolResult(f"{self.name} failed: {type(exc).__name__}: {exc}", is_error=True)
        if isinstance(output, ToolResult):
            return ToolResult(truncate(output.content), output.is_error, output.structured)
        if isinstance(output, str):
            return ToolResult(truncate(output))
        return ToolResult(truncate(json.dumps(output, ensure_ascii=False, default=str)), structured=output)


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[truncated {len(text) - limit} characters]"


def _call_with_timeout(fn, timeout: float):
    # A daemon thread per call: a tool stuck past its timeout must not hold the task slot.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="crewq-tool")
    try:
        return pool.submit(fn).result(timeout=timeout)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["Tool", "ToolContext", "ToolError", "ToolResult", "truncate"]
