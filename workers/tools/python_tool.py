"""A custom tool from a Python callable: `python: package.module:function`.

The parameters' JSON Schema comes from the type hints (through pydantic), the description from
the docstring. A parameter named `api_key` is not shown to the model: it receives the tool's
`api_key` from the crew file, resolved here in the worker.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from pydantic import ConfigDict, ValidationError, create_model

from crewq.config.errors import ConfigError, ToolError
from crewq.config.schema import ToolSpec

from .base import Tool, ToolContext

INJECTED = ("api_key",)


def import_callable(ref: str, key: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"python tool {ref!r} must look like 'package.module:function'", key=key)
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"python tool {ref!r} cannot be imported: {exc}", key=key) from None
    if not callable(fn):
        raise ConfigError(f"python tool {ref!r} is not callable", key=key)
    return fn


class PythonTool(Tool):
    def __init__(self, spec: ToolSpec, fn: Callable[..., Any] | None = None):
        self.fn = fn or import_callable(spec.python or "", f"tools.{spec.name}.python")
        self.name = spec.name
        self.description = inspect.getdoc(self.fn) or f"the Python function {spec.python}"
        self._model = _arguments_model(self.fn, spec.name)
        schema = self._model.model_json_schema()
        schema.pop("title", None)
        self.parameters = schema
        super().__init__(spec)

    def run(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        try:
            values = dict(self._model.model_validate(arguments))
        except ValidationError as exc:
            raise ToolError(f"bad arguments: {exc.errors()[0]['msg']}") from None
        params = inspect.signature(self.fn).parameters
        if "api_key" in params:
            values["api_key"] = self.setting(self.spec.api_key, context, "api_key")
        return self.fn(**values)


def _arguments_model(fn: Callable[..., Any], name: str):
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.name in INJECTED or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
