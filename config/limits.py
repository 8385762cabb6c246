"""Size limits on what a crew may bring into a worker and into Redis, with named defaults.

The operator sets them in the fleet policy (`limits:`, see `crewq.config.policy`); every refusal
names the limit, so the message says what to raise.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError

MiB = 1024 * 1024


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_file_bytes: int = Field(MiB, gt=0, description="a crew file (or submitted crew text)")
    max_depth: int = Field(50, gt=0, description="nesting of lists and mappings in a crew file")
    max_task_chars: int = Field(200_000, gt=0, description="the task text, placeholders filled")
    max_input_chars: int = Field(100_000, gt=0, description="each --input value")
    max_inputs: int = Field(100, gt=0, description="how many --input values")
    max_tool_argument_chars: int = Field(100_000, gt=0, description="one tool call's arguments, as JSON")
    max_tool_result_chars: int = Field(100_000, gt=0, description="one stored tool result, as JSON")
    max_reply_chars: int = Field(500_000, gt=0, description="one stored LLM reply, as JSON")
    max_prompt_chars: int = Field(1_000_000, gt=0, description="an agent's first message: the task and the "
                                                               "outputs of the agents it depends on")

    def check_size(self, limit: str, size: int, what: str, **where) -> None:
        """ConfigError naming `what` and the limit when `size` exceeds it."""
        allowed = getattr(self, limit)
        if size > allowed:
            unit = " bytes" if limit.endswith("_bytes") else " characters" if limit.endswith("_chars") else ""
            raise ConfigError(f"{what} is {size:,}{unit}, over the limit of {allowed:,}{unit} "
                              f"(policy limits.{limit})", **where)


DEFAULT_LIMITS = Limits()
