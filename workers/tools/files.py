"""`read_file`, `write_file`, `list_files`: confined to the tool's `base_dir`.

Paths are resolved (symlinks followed) before the check, so neither `..` nor a symlink leads out.
A relative `base_dir` starts at the crew file's folder; the default is that folder itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crewq.config.errors import ToolError

from .base import Tool, ToolContext

MAX_READ_BYTES = 1_000_000
MAX_LIST_ENTRIES = 500


class _FileTool(Tool):
    def base_dir(self, context: ToolContext) -> Path:
        raw = self.setting(self.spec.base_dir or ".", context, "base_dir")
        base = Path(raw)
        if not base.is_absolute():
            base = Path(context.source_dir or ".") / base
        return base.resolve()

    def confined(self, path: str, context: ToolContext) -> Path:
        base = self.base_dir(context)
        target = (base / path).resolve()
        if not target.is_relative_to(base):
            raise ToolError(f"path {path!r} is outside the allowed folder")
        return target


class ReadFile(_FileTool):
    name = "read_file"
    description = "Read a UTF-8 text file inside the agent's workspace folder."
    parameters = {"type": "object", "properties": {"path": {"type": "string", "description": "relative path"}},
                  "required": ["path"], "additionalProperties": False}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        target = self.confined(arguments["path"], context)
        if not target.is_file():
            raise ToolError(f"no such file: {arguments['path']}")
        data = target.read_bytes()[:MAX_READ_BYTES]
        return data.decode("utf-8", errors="replace")


class WriteFile(_FileTool):
    name = "write_file"
    description = "Write a UTF-8 text file inside the agent's workspace folder (folders are created)."
    parameters = {"type": "object",
                  "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                  "required": ["path", "content"], "additionalProperties": False}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        target = self.confined(arguments["path"], context)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Writing the same content twice is harmless, so a redelivered call needs no key.
        target.write_text(arguments["content"], encoding="utf-8")
        return f"wrote {len(arguments['content'])} characters to {arguments['path']}"


class ListFiles(_FileTool):
    name = "list_files"
    description = "List files inside the agent's workspace folder."
    parameters = {"type": "object",
                  "properties": {"path": {"type": "string", "default": "."},
                                 "recursive": {"type": "boolean", "default": False}},
                  "additionalProperties": False}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        base = self.base_dir(context)
        folder = self.confined(arguments.get("path", "."), context)
        if not folder.is_dir():
            raise ToolError(f"no such folder: {arguments.get('path', '.')}")
        found = folder.rglob("*") if arguments.get("recursive") else folder.iterdir()
        names = []
        for entry in sorted(found):
            if not entry.resolve().is_relative_to(base):
                continue  # a symlink out is not shown either
            names.append(str(entry.relative_to(base)) + ("/" if entry.is_dir() else ""))
            if len(names) >= MAX_LIST_ENTRIES:
                names.append(f"…[more than {MAX_LIST_ENTRIES} entries]")
                break
        return "\n".join(names) if names else "(empty)"
