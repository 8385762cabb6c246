"""YAML from someone else, parsed within bounds: size, nesting depth, no aliases, no duplicate keys.

PyYAML's safe loader still expands aliases (a few kilobytes of "billion laughs" make gigabytes
once walked), recurses once per nesting level (a deep list is a RecursionError) and lets a
duplicate key silently win. Crew files and policy files are read through `parse` instead.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from .errors import ConfigError
from .limits import DEFAULT_LIMITS, Limits


class _Refused(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


class _BoundedLoader(Reader, Scanner, Parser, Composer, SafeConstructor, Resolver):
    def __init__(self, text: str, max_depth: int):
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.max_depth, self.depth = max_depth, 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refused(f"YAML aliases (*{event.anchor}) are not allowed here: write the value out",
                           event.start_mark.line + 1)
        if getattr(event, "anchor", None):
            raise _Refused(f"YAML anchors (&{event.anchor}) are not allowed here: write the value out",
                           event.start_mark.line + 1)
        if isinstance(event, CollectionStartEvent):
            self.depth += 1
            if self.depth > self.max_depth:
                raise _Refused(f"nested deeper than {self.max_depth} levels (policy limits.max_depth)",
                               event.start_mark.line + 1)
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _Refused(f"duplicate key {key!r} (lines {seen[key]} and {line})", line)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: the constructor below reports it
        return super().construct_mapping(node, deep=deep)


def parse(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> tuple[Node | None, Any]:
    """(the node tree, for line numbers; the data). Raises ConfigError naming the file and line."""
    limits.check_size("max_file_bytes", len(text.encode("utf-8", errors="replace")), "the YAML text", file=file)
    loader = _BoundedLoader(text, limits.max_depth)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError(str(exc), file=file, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"malformed YAML: {exc.problem or exc}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file=file) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"malformed YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
    return node, data
