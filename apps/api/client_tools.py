"""Tools sent by API clients: normalise their schemas and names before a model sees them.

Client schemas are often sloppy: `"type": "dict"`, Python type names, `required: true` on a
property (JSON Schema draft 3), no `properties`, no `required`, names with dots. Rather than
reject them we repair what has one obvious meaning, then check the result with jsonschema so
that what reaches the model (and any upstream OpenAI server) is a valid schema. Names outside
OpenAI's `^[A-Za-z0-9_-]{1,64}$` get a safe alias; calls are mapped back to the client's name.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPE_ALIASES = {
    "dict": "object", "map": "object", "mapping": "object", "obj": "object",
    "list": "array", "tuple": "array", "set": "array",
    "str": "string", "text": "string",
    "int": "integer", "long": "integer",
    "float": "number", "double": "number", "decimal": "number",
    "bool": "boolean",
    "none": "null", "nonetype": "null",
}
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


class ToolSchemaError(ValueError):
    """A client tool that cannot be repaired; `param` says where (OpenAI error field)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class ClientTools:
    """The client's tools as the model sees them, and the name mapping both ways."""

    schemas: list[dict[str, Any]] = field(default_factory=list)
    to_safe: dict[str, str] = field(default_factory=dict)
    to_client: dict[str, str] = field(default_factory=dict)

    def safe_name(self, name: str) -> str:
        return self.to_safe.get(name, name)

    def client_name(self, name: str) -> str:
        return self.to_client.get(name, name)

    def choice(self, tool_choice: str | dict[str, Any] | None) -> str:
        """OpenAI `tool_choice` as ChatRequest's string: auto | none | required | <safe name>."""
        if tool_choice is None:
            return "auto"
        if isinstance(tool_choice, str):
            if tool_choice in ("auto", "none", "required"):
                return tool_choice
            raise ToolSchemaError("tool_choice must be auto, none, required or {type: function, function: {name}}", "tool_choice")
        name = (tool_choice.get("function") or {}).get("name") if isinstance(tool_choice.get("function"), dict) else None
        if tool_choice.get("type", "function") != "function" or not isinstance(name, str):
            raise ToolSchemaError("tool_choice must name a function: {type: function, function: {name}}", "tool_choice")
        if name not in self.to_safe:
            raise ToolSchemaError(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")
        return self.to_safe[name]


def normalise_tools(tools: list[Any]) -> ClientTools:
    out = ClientTools()
    for i, tool in enumerate(tools):
        name, description, parameters = _unpack(tool, f"tools[{i}]")
        if name in out.to_safe:
            raise ToolSchemaError(f"two tools are named {name!r}", f"tools[{i}].function.name")
        safe = _unique_safe_name(name, set(out.to_client))
        out.to_safe[name], out.to_client[safe] = safe, name
        out.schemas.append(
            {"type": "function", "function": {"name": safe, "description": description, "parameters": parameters}}
        )
    return out


def _unpack(tool: Any, where: str) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(tool, dict):
        raise ToolSchemaError(f"{where} must be an object", where)
    kind = tool.get("type", "function")
    if kind != "function":
        raise ToolSchemaError(f"{where}: only function tools are supported, not {kind!r}", f"{where}.type")
    # {"type": "function", "function": {...}} per OpenAI; the bare function object also occurs.
    function = tool.get("function", tool)
    if not isinstance(function, dict):
        raise ToolSchemaError(f"{where}.function must be an object", f"{where}.function")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolSchemaError(f"{where}.function.name must be a non-empty string", f"{where}.function.name")
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise ToolSchemaError(f"{where}.function.description must be a string", f"{where}.function.description")
    parameters = normalise_parameters(function.get("parameters"), f"{where}.function.parameters")
    return name.strip(), description, parameters


def normalise_parameters(schema: Any, where: str = "parameters") -> dict[str, Any]:
    """A repaired copy of a function's parameter schema; raises ToolSchemaError if still invalid."""
    if schema is None:
        schema = {}
    if not isinstance(schema, dict):
        raise ToolSchemaError(f"{where} must be a JSON Schema object", where)
    schema = _fix(copy.deepcopy(schema))
    schema.setdefault("type", "object")
    if schema["type"] != "object":
        raise ToolSchemaError(f"{where} must describe an object (the arguments), not {schema['type']!r}", where)
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{p!r}]" for p in exc.path)
        raise ToolSchemaError(f"{where}{path} is not a valid JSON Schema: {exc.message}", where) from None
    return schema


def _fix(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema  # booleans are valid schemas; anything else is left for check_schema to reject
    if isinstance(schema.get("type"), str):
        schema["type"] = _TYPE_ALIASES.get(schema["type"].strip().lower(), schema["type"].strip().lower())
    elif isinstance(schema.get("type"), list):
        schema["type"] = [_TYPE_ALIASES.get(t.lower(), t.lower()) if isinstance(t, str) else t for t in schema["type"]]
    is_object = schema.get("type") == "object" or (isinstance(schema.get("properties"), dict) and "type" not in schema)
    if is_object:
        schema["type"] = "object"
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        for key, sub in properties.items():
            # Draft-3 style `"required": true` inside a property.
            if isinstance(sub, dict) and isinstance(sub.get("required"), bool):
                if sub.pop("required") and key not in required:
                    required.append(key)
            properties[key] = _fix(sub)
        schema["properties"], schema["required"] = properties, required
    for key in _SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            schema[key] = [_fix(s) for s in schema[key]]
    for key in _SUBSCHEMA_ONE:
        if key in schema:
            schema[key] = _fix(schema[key])
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            schema[key] = {k: _fix(v) for k, v in schema[key].items()}
    return schema


def _unique_safe_name(name: str, taken: set[str]) -> str:
    if _SAFE_NAME.match(name) and name not in taken:
        return name
    base = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60] or "tool"
    safe, n = base, 1
    while safe in taken:
        n += 1
        safe = f"{base}_{n}"
    return safe
