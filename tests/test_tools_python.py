"""Python callables as tools: their schema comes from the type hints, and they keep to a timeout."""

from __future__ import annotations

from crewq.config.schema import ToolSpec
from crewq.workers.tools.base import ToolContext
from crewq.workers.tools.python_tool import PythonTool

CONTEXT = ToolContext(run_id="r", agent_id="a", idempotency_key="k", source_dir=None, env={})


def test_the_schema_comes_from_the_type_hints_and_the_docstring():
    tool = PythonTool(ToolSpec(name="echo", python="fakes.sample_tools:slow_echo"))
    assert tool.description == "Wait `delay` seconds, then return `text`."
    assert tool.parameters["properties"]["text"]["type"] == "string"
    assert tool.parameters["properties"]["delay"] == {"default": 0.5, "title": "Delay", "type": "number"}
    assert tool.parameters["required"] == ["text"] and tool.parameters["additionalProperties"] is False
    wrong = tool.execute({"text": "x", "delay": "soon"}, CONTEXT)
    assert wrong.is_error and "delay" in wrong.content


def test_a_tool_past_its_timeout_is_an_error_result():
    tool = PythonTool(ToolSpec(name="echo", python="fakes.sample_tools:slow_echo", extra={"timeout": "200ms"}))
    assert tool.execute({"text": "quick", "delay": 0}, CONTEXT).content == "echo:quick"
    slow = tool.execute({"text": "late", "delay": 2}, CONTEXT)
    assert slow.is_error and slow.content == "echo timed out after 0.2s"
