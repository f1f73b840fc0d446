"""Bounds that make every grammar-constrained JSON reply close inside its token budget.

A grammar guarantees that the output is a valid *prefix*; it does not guarantee that the model
ever finishes. A small base model loops inside a string ("17% of 2340 = 17% of 2340 = ..."), a
number ("1111111...") or an array, and a call that runs out of `max_tokens` is a failed call. So:

* `grammar_schema` makes the schema finite: arrays get a `maxItems`, objects take no keys
  beyond their `properties`, and a value of no type (any JSON, which nests without end) is a
  scalar.
* While decoding, the backend closes a free string after `string_tokens` tokens and ends a
  number after `number_tokens` (`JsonLexer` follows where the text is; the backends' grammar
  constraints do the forcing).
* `worst_case_tokens` is then an upper bound on the tokens any reply can take, and
  `fit_budget` picks the largest string budget whose bound fits `max_tokens`. When even the
  smallest does not fit (a schema with hundreds of fields), the budget grows to the bound
  instead: a call that cannot fail beats a call that respects a token limit and fails.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames")
_SCALARS = ["string", "number", "boolean", "null"]
#: Slack per string: the forced closing quote may wait for an escape or a UTF-8 sequence to end.
_STRING_SLACK = 3
#: $ref chains deeper than this count as unbounded (recursive schemas).
_MAX_REF_DEPTH = 8
UNBOUNDED = 10**9


@dataclass(frozen=True)
class Budget:
    string_tokens: int
    number_tokens: int
    #: An upper bound on the tokens of any reply under these bounds (end token included).
    worst_case: int


class JsonLexer:
    """Follows generated JSON text piece by piece: inside a string (after a backslash?) or a
    number, and for how many content tokens so far."""

    def __init__(self) -> None:
        self.in_string = self.escaped = self.in_number = False
        self.string_tokens = self.number_tokens = 0

    def feed(self, data: bytes) -> None:
        """Advance over the bytes of one token (or of forced text)."""
        for byte in data:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif byte == 0x5C:  # backslash
                    self.escaped = True
                elif byte == 0x22:  # closing quote
                    self.in_string = False
            elif byte == 0x22:  # the opening quote is not content
                self.in_string, self.string_tokens, self.in_number = True, -1, False
            elif chr(byte) in "0123456789-+.eE":
                if not self.in_number:
                    self.in_number, self.number_tokens = True, -1
            else:
                self.in_number = False
        if self.in_string:
            self.string_tokens += 1
        if self.in_number:
            self.number_tokens += 1


def grammar_schema(schema: Any, max_items: int) -> Any:
    """A copy of `schema` that admits only finite documents (see the module docstring)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: grammar_schema(sub, max_items) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [grammar_schema(sub, max_items) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = grammar_schema(value, max_items)
        else:
            out[key] = copy.deepcopy(value)
    types = _types(out)
    if "array" in types:
        bound = max_items if out.get("maxItems") is None else min(int(out["maxItems"]), max_items)
        out["maxItems"] = max(bound, int(out.get("minItems", 0)))
    if "object" in types and out.get("additionalProperties", True) is not False:
        out["additionalProperties"] = False
    if not types and not _is_composite(out) and "enum" not in out and "const" not in out:
        out["type"] = list(_SCALARS)
    return out


def worst_case_tokens(schema: Any, string_tokens: int, number_tokens: int, root: Any = None, depth: int = 0) -> int:
    """The most tokens a document valid for `schema` (as made finite by `grammar_schema`) can
    take when strings close after `string_tokens` and numbers after `number_tokens` tokens.
    Literal text (keys, punctuation, enum values) is counted as one token per character."""
    root = schema if root is None else root
    if depth > _MAX_REF_DEPTH or schema is True or schema is None:
        return UNBOUNDED
    if schema is False:
        return 0
    if not isinstance(schema, dict):
        return UNBOUNDED
    if isinstance(schema.get("$ref"), str):
        target = _resolve(root, schema["$ref"])
        return UNBOUNDED if target is None else worst_case_tokens(target, string_tokens, number_tokens, root, depth + 1)
    if "const" in schema:
        return _literal(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return max(_literal(v) for v in schema["enum"])
    options = [s for key in ("anyOf", "oneOf") for s in schema.get(key) or []]
    if options:
        return max(worst_case_tokens(s, string_tokens, number_tokens, root, depth + 1) for s in options)
    if schema.get("allOf"):
        return min(worst_case_tokens(s, string_tokens, number_tokens, root, depth + 1) for s in schema["allOf"])
    costs = []
    for kind in _types(schema):
        if kind == "string":
            limit = schema.get("maxLength")
            content = string_tokens if limit is None else min(string_tokens, int(limit))
            costs.append(2 + content + _STRING_SLACK)
        elif kind in ("number", "integer"):
            costs.append(number_tokens + 1)
        elif kind == "boolean":
            costs.append(5)
        elif kind == "null":
            costs.append(4)
        elif kind == "array":
            items = schema.get("items", {})
            per_item = worst_case_tokens(items, string_tokens, number_tokens, root, depth + 1) if items is not False else 0
            n = int(schema.get("maxItems", UNBOUNDED))
            costs.append(min(UNBOUNDED, 2 + n * (per_item + 1)))
        elif kind == "object":
            total = 2
            for key, sub in (schema.get("properties") or {}).items():
                total += len(json.dumps(key, ensure_ascii=False)) + 2
                total += worst_case_tokens(sub, string_tokens, number_tokens, root, depth + 1)
            costs.append(min(UNBOUNDED, total))
    return max(costs) if costs else UNBOUNDED


def fit_budget(schema: Any, max_tokens: int, string_tokens: int, number_tokens: int = 16) -> Budget:
    """The largest string budget (at most `string_tokens`, at least 4) whose worst case fits
    `max_tokens`; at 4 the worst case is returned even above `max_tokens` (the caller's budget
    must grow to it)."""
    best = max(4, string_tokens)
    while True:
        need = worst_case_tokens(schema, best, number_tokens) + 1  # + the end-of-turn token
        if need <= max_tokens or best <= 4:
            return Budget(best, number_tokens, need)
        best = max(4, best * 3 // 4)


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    if isinstance(schema.get("properties"), dict):
        return ["object"]
    if "items" in schema:
        return ["array"]
    return []


def _is_composite(schema: dict[str, Any]) -> bool:
    return any(k in schema for k in ("anyOf", "oneOf", "allOf", "$ref", "not"))


def _literal(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False)) + 1


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return None
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return copy.deepcopy(node) if isinstance(node, dict) else node
