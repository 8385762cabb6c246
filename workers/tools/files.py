"""`read_file`, `write_file`, `list_files`: confined to the tool's `base_dir` by the kernel.

A path is walked one component at a time from a descriptor of `base_dir`, each step opened with
`O_NOFOLLOW` relative to the folder before it (`dir_fd`), so no symlink is ever followed: not one
that was there when the call began, nor one swapped in between a check and an open (there is no
separate check). `..` is resolved by name before the walk and may not climb above `base_dir`.
A relative `base_dir` starts at the crew file's folder; the default is that folder itself. On a
fleet, the resolved `base_dir` must lie under one of the policy's `roots`.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from crewq.config.errors import ConfigError, ToolError
from crewq.config.policy import policy_of

from .base import Tool, ToolContext

MAX_READ_BYTES = 1_000_000
MAX_LIST_ENTRIES = 500
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_REFUSED = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # a symlink where a real file or folder must be


class FileTool(Tool):
    def resolve_base(self, source_dir: str | None, env: Mapping[str, str]) -> Path:
        raw = self.setting(self.spec.base_dir or ".", ToolContext("", "", "", source_dir, env), "base_dir")
        base = Path(raw)
        if not base.is_absolute():
            if source_dir is None:  # a crew sent as text: the worker's own folder is not its folder
                raise ConfigError(f"base_dir {str(raw)!r} is relative, and a crew sent as text has no folder "
                                  "to start from: give an absolute base_dir", key=f"tools.{self.spec.name}.base_dir")
            base = Path(source_dir) / base
        return base.resolve()

    def check_root(self, source_dir: str | None, env: Mapping[str, str]) -> None:
        """The fleet policy's `roots` (when the environment carries a policy); ConfigError if outside."""
        policy = policy_of(env)
        if policy is not None:
            policy.check_base_dir(self.resolve_base(source_dir, env), key=f"tools.{self.spec.name}.base_dir")

    def base_dir(self, context: ToolContext) -> Path:
        self.check_root(context.source_dir, context.env)
        return self.resolve_base(context.source_dir, context.env)

    @contextmanager
    def folder(self, path: str, context: ToolContext, create: bool = False) -> Iterator[tuple[int, str]]:
        """(a descriptor of the folder holding `path`'s last component, that component's name)."""
        parts = _components(path)
        fd = _open_dir(str(self.base_dir(context)), None, path)
        try:
            for part in parts[:-1]:
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                nxt = _open_dir(part, fd, path)
                os.close(fd)
                fd = nxt
            yield fd, (parts[-1] if parts else ".")
        finally:
            os.close(fd)


def _components(path: str) -> list[str]:
    if not isinstance(path, str) or "\x00" in path:
        raise ToolError("a path is a string without NUL characters")
    if path.startswith(("/", "\\")):
        raise ToolError(f"path {path!r} is outside the allowed folder (absolute paths are not allowed)")
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ToolError(f"path {path!r} is outside the allowed folder")
            parts.pop()
        else:
            parts.append(part)
    return parts


def _open_dir(name: str, dir_fd: int | None, path: str) -> int:
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ToolError(f"no such folder on the way to {path!r}") from None
    except OSError as exc:
        if exc.errno in _REFUSED:
            raise ToolError(f"path {path!r} is outside the allowed folder (it goes through a symbolic link "
                            "or a file)") from None
        raise ToolError(f"cannot open {path!r}: {exc.strerror}") from None


def open_file(name: str, dir_fd: int, flags: int, path: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ToolError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ToolError(f"{path!r} is a folder") from None
    except OSError as exc:
        if exc.errno in _REFUSED:
            raise ToolError(f"path {path!r} is outside the allowed folder (a symbolic link)") from None
        raise ToolError(f"cannot open {path!r}: {exc.strerror}") from None


class ReadFile(FileTool):
    name = "read_file"
    description = "Read a UTF-8 text file inside the agent's workspace folder."
    parameters = {"type": "object", "properties": {"path": {"type": "string", "description": "relative path"}},
                  "required": ["path"], "additionalProperties": False}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        path = arguments["path"]
        with self.folder(path, context) as (dir_fd, name):
            # O_NONBLOCK: a FIFO planted in the folder must not hang the open.
            fd = open_file(name, dir_fd, os.O_RDONLY | os.O_NONBLOCK, path)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ToolError(f"no such file: {path}")
            data = handle.read(MAX_READ_BYTES)
        return data.decode("utf-8", errors="replace")


class WriteFile(FileTool):
    name = "write_file"
    description = "Write a UTF-8 text file inside the agent's workspace folder (folders are created)."
    parameters = {"type": "object",
                  "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                  "required": ["path", "content"], "additionalProperties": False}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        path = arguments["path"]
        if not _components(path):
            raise ToolError(f"{path!r} names the folder itself, not a file")
        with self.folder(path, context, create=True) as (dir_fd, name):
            fd = open_file(name, dir_fd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, path)
        # Writing the same content twice is harmless, so a redelivered call needs no key.
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ToolError(f"{path!r} is not a regular file")
            handle.write(arguments["content"])
        return f"wrote {len(arguments['content'])} characters to {path}"


class ListFiles(FileTool):
    name = "list_files"
    description = "List files inside the agent's workspace folder."
    parameters = {"type": "object",
                  "properties": {"path": {"type": "string", "default": "."},
                                 "recursive": {"type": "boolean", "default": False}},
                  "additionalProperties": False}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> str:
        path = arguments.get("path", ".")
        prefix = "/".join(_components(path))
        names: list[str] = []
        with self.folder(path, context) as (dir_fd, name):
            fd = _open_dir(name, dir_fd, path)
        try:
            _walk(fd, prefix, bool(arguments.get("recursive")), names)
        finally:
            os.close(fd)
        return "\n".join(names) if names else "(empty)"


def _walk(fd: int, prefix: str, recursive: bool, names: list[str]) -> None:
    """Entries of the folder open as `fd`, sorted; symlinks are neither shown nor followed."""
    with os.scandir(fd) as entries:
        found = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries if not e.is_symlink())
    for name, is_dir in found:
        if len(names) >= MAX_LIST_ENTRIES:
            names.append(f"…[more than {MAX_LIST_ENTRIES} entries]")
            return
        shown = f"{prefix}/{name}" if prefix else name
        names.append(shown + ("/" if is_dir else ""))
        if recursive and is_dir:
            try:
                child = os.open(name, _DIR, dir_fd=fd)
            except OSError:
                continue  # swapped for a symlink since it was listed: not followed
            try:
                _walk(child, shown, True, names)
            finally:
                os.close(child)
            if names and names[-1].startswith("…[more"):
                return
