"""Tools behind one interface (`Tool.run`, called through `Tool.execute`)."""

from .base import Tool, ToolContext, ToolResult
from .registry import builtin_names, register_tool, toolbox

__all__ = ["Tool", "ToolContext", "ToolResult", "builtin_names", "register_tool", "toolbox"]
