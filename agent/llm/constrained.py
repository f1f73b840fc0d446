"""What a grammar-constrained local model must produce, independent of the runtime.

Shared by the transformers backend (`agent/llm/local.py`, `hf:`) and the llama.cpp backend
(`agent/llm/gguf.py`, `bundled`): tool schemas, the output plan of a request (free text, a
JSON reply, one tool's arguments, or a choice among tools), the plain-text transcript a model
without a chat template reads, and the schema check behind every grammar.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.llm.base import ChatReply, ChatRequest, LLMError, TokenCallback, ToolCall

TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:", "\nTool result", "\nAssistant:", "[called tool", "Tool result (")

# ---------------------------------------------------------------------------------------------
# Schema helpers


def tool_name(tool: dict[str, Any]) -> str:
    return (tool.get("function") or tool)["name"]


def tool_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments; a tool without one takes an empty object."""
    params = copy.deepcopy((tool.get("function") or tool).get("parameters") or {})
    params.setdefault("type", "object")
    if params["type"] == "object":
        params.setdefault("properties", {})
    return params


_NOT_SUBSCHEMAS = {"enum", "const", "default", "examples", "required", "title", "description"}


def _cap_arrays(schema: Any, max_items: int | None) -> Any:
    """Copy of `schema` with maxItems on arrays that have no bound (unchanged if max_items is None)."""
    if max_items is None:
        return schema
    if isinstance(schema, list):
        return [_cap_arrays(s, max_items) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in _NOT_SUBSCHEMAS else _cap_arrays(v, max_items)) for k, v in schema.items()}
    types = out.get("type")
    if "array" in (types if isinstance(types, list) else [types]) and "maxItems" not in out:
        out["maxItems"] = max(max_items, int(out.get("minItems", 0)))
    return out


_REF_RE = re.compile(r"^#/(\$defs|definitions)/(.+)$")


def _hoist_defs(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Detach a schema's `$defs` (renamed with `prefix`) so it can be nested under another root.

    Pydantic puts referenced models in `$defs` with `#/$defs/X` refs, which stop resolving once
    the schema is embedded in our anyOf wrapper; the definitions move to the wrapper's root.
    """
    schema = copy.deepcopy(schema)
    defs = {**schema.pop("definitions", {}), **schema.pop("$defs", {})}

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and (m := _REF_RE.match(v)):
                out[k] = f"#/$defs/{prefix}{m.group(2)}"
            elif k in _NOT_SUBSCHEMAS:
                out[k] = v
            else:
                out[k] = rewrite(v)
        return out

    return rewrite(schema), {f"{prefix}{name}": rewrite(d) for name, d in defs.items()}


def tool_choice_schema(tools: list[dict[str, Any]], allow_answer: bool) -> dict[str, Any]:
    """anyOf {"name": const, "arguments": parameters} per tool, plus {"answer": string} if allowed."""
    options: list[dict[str, Any]] = []
    all_defs: dict[str, Any] = {}
    for i, tool in enumerate(tools):
        params, defs = _hoist_defs(tool_parameters(tool), prefix=f"t{i}_")
        all_defs.update(defs)
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool_name(tool)}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    if allow_answer:
        options.append({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})
    schema: dict[str, Any] = {"anyOf": options}
    if all_defs:
        schema["$defs"] = all_defs
    return schema


def validate_against_schema(value: Any, schema: dict[str, Any]) -> list[str]:
    """Violations of `value` against `schema` (empty: valid).

    A last line of defence behind the grammar, so that a schema keyword the grammar compiler
    ignores can never let an invalid tool call through silently.
    """
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    return [f"${''.join(f'[{p!r}]' for p in err.absolute_path)}: {err.message}" for err in validator.iter_errors(value)]


# ---------------------------------------------------------------------------------------------
# Prompt rendering


def _content_text(content: Any) -> str:
    """OpenAI content (str, None, or a list of parts) as plain text; images become a placeholder."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'attachment')}]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return str(content)


def _arguments_dict(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {"_raw": str(arguments)}
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


def _calls_of(message: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, arguments) of an assistant message's tool calls."""
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        calls.append((str(call.get("id", "")), str(fn.get("name", "")), _arguments_dict(fn.get("arguments"))))
    return calls


def _tool_names_by_call_id(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {cid: name for m in messages for cid, name, _ in _calls_of(m)}


def _tools_text(tools: list[dict[str, Any]]) -> str:
    lines = ["Available tools:"]
    for tool in tools:
        fn = tool.get("function") or tool
        lines.append(
            f"- {fn['name']}: {fn.get('description', '').strip()} "
            f"Arguments (JSON schema): {json.dumps(tool_parameters(tool), ensure_ascii=False)}"
        )
    return "\n".join(lines)


def _call_text(name: str, arguments: dict[str, Any]) -> str:
    return f"[called tool {name} with {json.dumps(arguments, ensure_ascii=False)}]"


def _native_messages(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """Messages in the shape HF chat templates expect (arguments as dicts), instruction in system."""
    names = _tool_names_by_call_id(messages)
    out: list[dict[str, Any]] = []
    for m in messages:
        msg: dict[str, Any] = {"role": m.get("role", "user"), "content": _content_text(m.get("content"))}
        calls = _calls_of(m)
        if calls:
            msg["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}} for cid, name, args in calls
            ]
        if msg["role"] == "tool":
            msg["tool_call_id"] = m.get("tool_call_id", "")
            msg["name"] = m.get("name") or names.get(str(m.get("tool_call_id")), "tool")
        out.append(msg)
    if instruction:
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{instruction}".strip()}
        else:
            out.insert(0, {"role": "system", "content": instruction})
    return out


def _system_and_turns(
    messages: list[dict[str, Any]], tools_text: str, instruction: str
) -> tuple[str, list[tuple[str, str]]]:
    """Split a conversation into one system text and (role, text) turns with tool traffic as text."""
    names = _tool_names_by_call_id(messages)
    system_parts: list[str] = []
    turns: list[tuple[str, str]] = []
    for m in messages:
        role, text = m.get("role", "user"), _content_text(m.get("content")).strip()
        if role == "system":
            system_parts.append(text)
            continue
        if role == "tool":
            name = m.get("name") or names.get(str(m.get("tool_call_id")), "tool")
            turns.append(("tool", f"({name}): {text}"))
            continue
        calls = "\n".join(_call_text(name, args) for _, name, args in _calls_of(m))
        turns.append((role, "\n".join(p for p in (text, calls) if p)))
    system = "\n\n".join(p for p in (*system_parts, tools_text, instruction) if p)
    return system, turns


def _simplified_messages(messages: list[dict[str, Any]], tools_text: str, instruction: str) -> list[dict[str, Any]]:
    """Only alternating user/assistant turns, for templates that reject system or tool roles."""
    system, turns = _system_and_turns(messages, tools_text, instruction)
    out: list[dict[str, str]] = []
    for role, text in turns:
        role, text = ("user", f"Tool result {text}") if role == "tool" else (role, text)
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    if not out or out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": ""})
    if system:
        out[0]["content"] = f"{system}\n\n{out[0]['content']}".strip()
    return out


def render_transcript(messages: list[dict[str, Any]], tools: list[dict[str, Any]], instruction: str) -> str:
    """The plain-text fallback format documented in the module docstring."""
    system, turns = _system_and_turns(messages, _tools_text(tools) if tools else "", instruction)
    labels = {"user": "User", "assistant": "Assistant", "tool": "Tool result"}
    blocks = [f"System: {system}"] if system else []
    for role, text in turns:
        label = labels.get(role, role.capitalize())
        blocks.append(f"{label} {text}" if role == "tool" else f"{label}: {text}")
    blocks.append("Assistant:")
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------------------
# What to generate


@dataclass
class OutputPlan:
    """How the reply is decoded and interpreted."""

    kind: str  # "text" | "json" (response_schema) | "arguments" (one named tool) | "choice"
    instruction: str = ""
    #: The schema the grammar is compiled from (capped); None for free text.
    grammar_schema: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool: dict[str, Any] | None = None


def plan_output(request: ChatRequest, max_items: int | None = None) -> OutputPlan:
    tools = request.tools
    if request.response_schema is not None:
        return OutputPlan(
            "json",
            "Reply with only a JSON value that is valid for this JSON schema: "
            + json.dumps(request.response_schema, ensure_ascii=False),
            _cap_arrays(request.response_schema, max_items),
        )
    choice = request.tool_choice
    if not tools or choice == "none":
        return OutputPlan("text")
    names = [tool_name(t) for t in tools]
    if choice not in ("auto", "required"):
        if choice not in names:
            raise LLMError(f"tool_choice names the tool {choice!r}, which is not among the offered tools {names}")
        tool = tools[names.index(choice)]
        return OutputPlan(
            "arguments",
            f"Call the tool {choice} now. Reply with only the JSON object of its arguments.",
            _cap_arrays(tool_parameters(tool), max_items),
            tools,
            tool,
        )
    instruction = (
        f"To call a tool ({', '.join(names)}), reply with only a JSON object "
        '{"name": "<tool name>", "arguments": {<the arguments>}}.'
    )
    if choice == "auto":
        instruction += ' To answer without a tool, reply with only {"answer": "<your answer>"}.'
    schema = tool_choice_schema(tools, allow_answer=choice == "auto")
    return OutputPlan("choice", instruction, _cap_arrays(schema, max_items), tools)


def reply_from_json(spec: str, plan: OutputPlan, request: ChatRequest, text: str) -> ChatReply:
    """The reply a grammar-constrained JSON document stands for, checked against its schema
    once more (a schema keyword the grammar compiler ignores must not let a bad call through)."""
    try:
        # strict=False: xgrammar's length-bounded string rule admits raw control characters,
        # which strict JSON forbids; they are re-escaped when the value is serialised again.
        value = json.loads(text, strict=False)
    except ValueError as exc:
        raise LLMError(f"internal error: grammar-constrained output is not JSON: {text[:200]!r}") from exc

    def require_valid(value: Any, schema: dict[str, Any], what: str) -> None:
        errors = validate_against_schema(value, schema)
        if errors:
            raise LLMError(f"{spec} produced {what} that violate the schema despite the grammar: {'; '.join(errors[:3])}")

    if plan.kind == "json":
        require_valid(value, request.response_schema or {}, "reply")
        return ChatReply(content=json.dumps(value, ensure_ascii=False))
    if plan.kind == "arguments":
        assert plan.tool is not None
        require_valid(value, tool_parameters(plan.tool), f"arguments of {tool_name(plan.tool)}")
        return ChatReply(tool_calls=[ToolCall(name=tool_name(plan.tool), arguments=value)])
    if "answer" in value:
        return ChatReply(content=str(value["answer"]))
    tool = next(t for t in plan.tools if tool_name(t) == value["name"])
    require_valid(value["arguments"], tool_parameters(tool), f"arguments of {value['name']}")
    return ChatReply(tool_calls=[ToolCall(name=value["name"], arguments=value["arguments"])])


SyncWork = Callable[[ChatRequest, "Callable[[str], None] | None", threading.Event], ChatReply]


async def complete_in_worker(work: SyncWork, request: ChatRequest, on_token: TokenCallback | None) -> ChatReply:
    """Run an in-process model's blocking `work(request, emit, cancel)` in a worker thread.

    Tokens reach `on_token` on the event loop's thread; a cancelled caller sets `cancel`, so
    the worker stops at its next token instead of holding the model lock."""
    loop = asyncio.get_running_loop()
    emit = None
    if on_token is not None:
        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(on_token, piece)

    cancel = threading.Event()
    try:
        return await asyncio.to_thread(work, request, emit, cancel)
    except asyncio.CancelledError:
        cancel.set()
        raise


def max_new_tokens(request: ChatRequest, settings: Any) -> int:
    """The request's token budget, capped by `limits.max_new_tokens` when settings are given."""
    limit = request.max_tokens
    if settings is not None:
        limit = min(limit, settings.limits.max_new_tokens)
    return max(1, limit)


def compile_json_grammar(compiler: Any, schema: dict[str, Any], key: str) -> Any:
    """`schema` compiled by an xgrammar GrammarCompiler (both grammar backends); a schema it
    cannot compile is an LLMError naming it (`key`: its JSON text)."""
    try:
        # No free whitespace: a weak model would otherwise pad JSON with newlines forever.
        return compiler.compile_json_schema(schema, any_whitespace=False, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - xgrammar raises plain RuntimeErrors, among others
        raise LLMError(f"Could not build an output grammar from the JSON schema {key[:300]}: {type(exc).__name__}: {exc}") from exc
