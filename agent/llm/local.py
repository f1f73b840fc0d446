"""In-process transformers backend for `hf:<repo-or-path>` and `bundled`, with grammar-constrained JSON.

Whenever the reply must be JSON (a `response_schema`, or tools offered with a tool_choice other than
"none") generation runs under an xgrammar grammar compiled from the JSON schema, so every token
the model can pick keeps the output a valid prefix of a schema-valid document. A tool call can
therefore not fail to parse; the only failure left is running out of `max_tokens` before the JSON
is complete, which raises `LLMError` instead of returning a truncated document. For the bundled
base model, which loops inside strings, a per-string token budget closes runaway strings (see
`_GrammarConstraint`) so that this rarely happens.

Output shapes (what the grammar enforces):
  * `response_schema`            -> the reply content is a JSON document valid for it;
  * tool_choice = "<tool name>"  -> the arguments object of that tool (under its `parameters`);
  * tool_choice = "required"     -> {"name": <tool>, "arguments": {...}} for one of the tools;
  * tool_choice = "auto"         -> the same, or {"answer": "<text>"} for a plain answer;
  * otherwise                    -> free text, streamed, until end-of-turn or `max_tokens`.

Prompts are rendered with the tokenizer's chat template. When there is none (the bundled GGUF base
model has none), or the template rejects the conversation (some Gemma templates refuse "system" or
"tool" roles), we first retry with a simplified conversation (system folded into the first user
turn, tool results as user turns) and finally fall back to this plain-text transcript:

    System: <system messages, tool list, output instructions>

    User: <text>

    Assistant: <text>
    [called tool <name> with {"arg": ...}]

    Tool result (<name>): <text>

    Assistant:

Free text generated after such a transcript stops at the next "\\nUser:" / "\\nSystem:" /
"\\nTool result" / "\\nAssistant:" line, since a base model would happily write both sides, and
at an imitated "[called tool" / "Tool result (" marker, since no tool runs inside a reply.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from agent.config import Settings
from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, ToolCall
from multimodal.llm_loader import LoadedLM, load_bundled_model, load_hf_model

logger = logging.getLogger(__name__)

Loader = Callable[[], LoadedLM]

# End-of-turn markers of common chat formats; generation stops on whichever this vocabulary has.
_END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|eom_id|>")
# The last two are our own tool-call and tool-result markers: a base model that writes them is
# inventing a tool round, and everything from there on is fiction.
TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:", "\nTool result", "\nAssistant:", "[called tool", "Tool result (")
# A base model inside a free string or array may never close it (greedy decoding loops). Strings
# get a token budget enforced while decoding, arrays a maxItems where the schema sets none.
# (A grammar-level maxLength would also work, but xgrammar's compile time grows ~28 ms per
# allowed character on Gemma's 262k vocabulary: 3.4 s per schema for maxLength 120.)
BUNDLED_MAX_STRING_TOKENS = 40
BUNDLED_MAX_ARRAY_ITEMS = 16


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


@dataclass
class RenderedPrompt:
    text: str
    #: "template", "template-simplified" or "transcript"; the transcript needs stop strings.
    style: str
    add_special_tokens: bool


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], instruction: str) -> RenderedPrompt:
    """Chat template if the tokenizer has one that accepts the conversation, else the transcript."""
    if getattr(tokenizer, "chat_template", None):
        tools_text = _tools_text(tools) if tools else ""

        def native() -> str:
            msgs = _native_messages(messages, instruction)
            text = _apply_template(tokenizer, msgs, tools or None)
            if tools and text == _apply_template(tokenizer, msgs, None):
                # The template ignores `tools` (Gemma's does): describe them in the system text.
                text = _apply_template(tokenizer, _native_messages(messages, f"{tools_text}\n\n{instruction}"), None)
            return text

        def simplified() -> str:
            return _apply_template(tokenizer, _simplified_messages(messages, tools_text, instruction), None)

        for style, render in (("template", native), ("template-simplified", simplified)):
            try:
                text = render()
            except Exception as exc:  # noqa: BLE001 - templates raise anything from jinja errors to TypeError
                logger.debug("Chat template rejected the %s form: %s", style, exc)
                continue
            if isinstance(text, str) and text:
                # The template already contains BOS and friends.
                return RenderedPrompt(text, style, add_special_tokens=False)
    return RenderedPrompt(render_transcript(messages, tools, instruction), "transcript", add_special_tokens=True)


def _apply_template(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)


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


# ---------------------------------------------------------------------------------------------
# Generation plumbing


class _GrammarConstraint(LogitsProcessor):
    """Logits processor that masks every token the grammar forbids (batch size 1).

    Unlike `xgrammar.contrib.hf.LogitsProcessor` it keeps the matcher reachable after generate()
    so we can ask whether the JSON was finished, and it accepts tokens by position so that the
    last token (sampled after the final call) can be fed in afterwards.

    With a `string_budget` it also closes runaway strings: it follows the JSON text (inside a
    string or not) and once a string has taken `string_budget` tokens, the next position where
    the grammar allows a bare `"` gets only that token. Strings with an enum, pattern or
    maxLength are untouched until the grammar itself allows them to end.
    """

    def __init__(self, compiled: Any, prompt_len: int, runtime: _Runtime, string_budget: int | None) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self.matcher = xgr.GrammarMatcher(compiled, override_stop_tokens=runtime.stop_ids)
        self.bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)
        self.prompt_len = prompt_len
        self.accepted = 0
        self.stop_ids = runtime.stop_ids
        self.token_bytes = runtime.token_bytes
        self.quote_ids = runtime.quote_ids
        self.string_budget = string_budget
        # A tiny JSON lexer state: are we inside a string, after a backslash, how long so far.
        self.in_string = False
        self.escaped = False
        self.string_tokens = 0

    def accept(self, tokens: list[int]) -> None:
        for token in tokens[self.accepted :]:
            if self.matcher.is_terminated():
                break
            if not self.matcher.accept_token(token):
                raise LLMError(f"internal error: token {token} violates the output grammar")
            self.accepted += 1
            if self.string_budget is not None:
                self._track(self.token_bytes[token])

    def _track(self, data: bytes) -> None:
        for byte in data:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif byte == 0x5C:  # backslash
                    self.escaped = True
                elif byte == 0x22:  # closing quote
                    self.in_string = False
            elif byte == 0x22:
                self.in_string, self.string_tokens = True, -1  # the opening token is not content
        if self.in_string:
            self.string_tokens += 1

    def _allowed(self, token: int) -> bool:
        return bool((int(self.bitmask[0, token // 32]) >> (token % 32)) & 1)

    @staticmethod
    def _force(scores: torch.FloatTensor, token: int) -> torch.FloatTensor:
        forced = torch.full_like(scores, float("-inf"))
        forced[:, token] = 0
        return forced

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.accept(input_ids[0, self.prompt_len :].tolist())
        if self.matcher.is_terminated():
            # Only reachable if generate() did not stop on the stop token: force it to.
            return self._force(scores, self.stop_ids[0])
        self.matcher.fill_next_token_bitmask(self.bitmask)
        if self.string_budget is not None and self.in_string and self.string_tokens >= self.string_budget:
            quote = next((q for q in self.quote_ids if self._allowed(q)), None)
            if quote is not None:
                return self._force(scores, quote)
        # xgrammar masks on CPU or CUDA only (MPS logits make a round trip).
        move = scores.device.type not in ("cuda", "cpu")
        target = scores.to("cpu") if move else scores
        self._xgr.apply_token_bitmask_inplace(target, self.bitmask.to(target.device))
        return target.to(scores.device) if move else target

    def finished(self, generated: list[int]) -> bool:
        self.accept(generated)
        return self.matcher.is_terminated() or self.matcher.is_completed()


class _StopCriteria(StoppingCriteria):
    """Stops on a transcript stop string (base models write the next turn) or on cancellation."""

    def __init__(self, tokenizer: Any, prompt_len: int, stops: tuple[str, ...], cancel: threading.Event) -> None:
        self.tokenizer, self.prompt_len, self.stops, self.cancel = tokenizer, prompt_len, stops, cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = self.cancel.is_set()
        if not done and self.stops:
            tail = self.tokenizer.decode(input_ids[0, self.prompt_len :][-16:], skip_special_tokens=True)
            done = any(s in tail for s in self.stops)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


class _TextStreamer:
    """Streams visible text: holds back anything that may still turn into a stop string, trailing
    whitespace and half-decoded characters, so the pieces always join up to the final content."""

    def __init__(self, tokenizer: Any, stop_ids: set[int], stops: tuple[str, ...], emit: Callable[[str], None] | None):
        self.tokenizer, self.stop_ids, self.stops, self.emit = tokenizer, stop_ids, stops, emit
        self.ids: list[int] = []
        self.sent = 0
        self._prompt_seen = False

    def text(self, final: bool) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).lstrip()
        text = _cut_at_stop(text, self.stops)
        if final:
            return text.rstrip()
        hold = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        # Half a UTF-8 character decodes as U+FFFD; trailing whitespace may precede a stop string.
        return text[: len(text) - hold].rstrip("\ufffd").rstrip()

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands the streamer the prompt
            self._prompt_seen = True
            return
        self.ids.extend(t for t in value.reshape(-1).tolist() if t not in self.stop_ids)
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.text(final)
        if self.emit is not None and len(text) > self.sent:
            self.emit(text[self.sent :])
            self.sent = len(text)


def _stop_token_ids(lm: LoadedLM) -> list[int]:
    """EOS ids of the generation config and tokenizer, plus any end-of-turn marker in the vocab."""
    ids: list[int] = []

    def add(value: Any) -> None:
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(getattr(lm.model.generation_config, "eos_token_id", None))
    add(lm.tokenizer.eos_token_id)
    vocab = lm.tokenizer.get_vocab()
    for token in _END_OF_TURN_TOKENS:
        if token in vocab:
            add(vocab[token])
    if not ids:
        raise LLMError(f"The model {lm.source} has no end-of-sequence token; cannot tell when a reply ends")
    return ids


class _Runtime:
    """A loaded model with its generation lock and grammar cache (one per backend instance)."""

    def __init__(self, lm: LoadedLM) -> None:
        self.lm = lm
        self.generate_lock = threading.Lock()
        self.stop_ids = _stop_token_ids(lm)
        self._grammar_lock = threading.Lock()
        self._compiler: Any = None
        self._grammars: dict[str, Any] = {}
        #: The bytes of every token and the tokens that are exactly `"` (to close runaway strings).
        self.token_bytes: list[bytes] = []
        self.quote_ids: list[int] = []

    def vocab_size(self) -> int:
        # The logits width, which can exceed the tokenizer's vocabulary (padding rows).
        head = self.lm.model.get_output_embeddings()
        if head is not None and getattr(head, "weight", None) is not None:
            return int(head.weight.shape[0])
        return int(self.lm.model.config.get_text_config().vocab_size)

    def grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, ensure_ascii=False)
        with self._grammar_lock:
            if key in self._grammars:
                return self._grammars[key]
            import xgrammar as xgr

            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.lm.tokenizer, vocab_size=self.vocab_size(), stop_token_ids=self.stop_ids
                )
                self._compiler = xgr.GrammarCompiler(info)
                self.token_bytes = list(info.decoded_vocab)
                self.quote_ids = [i for i, data in enumerate(self.token_bytes) if data == b'"']
            try:
                # No free whitespace: a weak model would otherwise pad JSON with newlines forever.
                compiled = self._compiler.compile_json_schema(schema, any_whitespace=False, strict_mode=True)
            except Exception as exc:  # noqa: BLE001
                raise LLMError(
                    f"Could not build an output grammar from the JSON schema {key[:300]}: {type(exc).__name__}: {exc}"
                ) from exc
            self._grammars[key] = compiled
            return compiled


# ---------------------------------------------------------------------------------------------
# The backend


class LocalBackend(ChatBackend):
    """A transformers model in this process; tool calls and JSON replies are grammar-constrained."""

    constrained = True

    def __init__(
        self,
        spec: str,
        loader: Loader | LoadedLM,
        settings: Settings | None = None,
        *,
        max_string_tokens: int | None | Literal["default"] = "default",
        max_array_items: int | None | Literal["default"] = "default",
    ) -> None:
        """`loader` is called once, on the first `complete`; a `LoadedLM` is used as is.

        `max_string_tokens` closes a free JSON string after that many tokens and `max_array_items`
        bounds arrays the schema leaves unbounded ("default": 40 tokens / 16 items for `bundled`,
        no bound for `hf:` models, which close their strings on their own).
        """
        self.spec = spec
        self.settings = settings
        bundled = spec.split(":", 1)[0] == "bundled"
        # The bundled 270M base model cannot pick among tools; the router picks for it.
        self.chooses_tools = not bundled
        self.max_string_tokens = (BUNDLED_MAX_STRING_TOKENS if bundled else None) if max_string_tokens == "default" else max_string_tokens
        self.max_array_items = (BUNDLED_MAX_ARRAY_ITEMS if bundled else None) if max_array_items == "default" else max_array_items
        self._loader: Loader | None = None if isinstance(loader, LoadedLM) else loader
        self._preloaded = loader if isinstance(loader, LoadedLM) else None
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str, settings: Settings) -> LocalBackend:
        """`bundled` or `hf:<repo-or-path>`, loading lazily on the first call."""
        if spec == "bundled":
            return cls(spec, functools.partial(load_bundled_model, settings.cache_dir, settings.device), settings)
        if spec.startswith("hf:") and spec[3:].strip():
            return cls(spec, functools.partial(load_hf_model, spec[3:].strip(), settings.device), settings)
        raise LLMError(f"LocalBackend handles 'bundled' and 'hf:<repo-or-path>', not {spec!r}")

    # -- loading ------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    def _ensure_runtime(self) -> _Runtime:
        if self._runtime is not None:
            return self._runtime
        with self._load_lock:  # concurrent first calls load once
            if self._runtime is None:
                lm = self._preloaded
                if lm is None:
                    assert self._loader is not None
                    try:
                        lm = self._loader()
                    except LLMError:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        raise LLMError(f"Loading the model for {self.spec!r} failed: {type(exc).__name__}: {exc}") from exc
                self._runtime = _Runtime(lm)
            return self._runtime

    # -- ChatBackend --------------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default"
    ) -> ChatReply:
        loop = asyncio.get_running_loop()
        emit = None
        if on_token is not None:
            # Generation runs in a worker thread; hand tokens to the callback on the loop's thread.
            def emit(piece: str) -> None:
                loop.call_soon_threadsafe(on_token, piece)

        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._complete_sync, request, emit, cancel)
        except asyncio.CancelledError:
            cancel.set()  # stop the worker at its next token instead of holding the model lock
            raise

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"spec": self.spec, "loaded": self.loaded, "constrained": self.constrained}
        lm = self._runtime.lm if self._runtime else self._preloaded
        if lm is not None:
            info.update(
                source=lm.source,
                device=lm.device,
                dtype=str(lm.dtype).removeprefix("torch."),
                origin=lm.origin,
                load_seconds=round(lm.load_seconds, 2),
            )
        else:
            info.update(
                source=self.spec.removeprefix("hf:") if self.spec.startswith("hf:") else "gemma3-270m (bundled GGUF)",
                device=self.settings.device if self.settings else "auto",
                dtype=None,
            )
        return info

    async def aclose(self) -> None:
        with self._load_lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None and runtime.lm.device.startswith("cuda"):
            del runtime
            torch.cuda.empty_cache()

    # -- the work, in a worker thread ---------------------------------------------------------

    def _max_new_tokens(self, request: ChatRequest) -> int:
        limit = request.max_tokens
        if self.settings is not None:
            limit = min(limit, self.settings.limits.max_new_tokens)
        return max(1, limit)

    def _complete_sync(
        self, request: ChatRequest, emit: Callable[[str], None] | None, cancel: threading.Event
    ) -> ChatReply:
        runtime = self._ensure_runtime()
        lm = runtime.lm
        plan = plan_output(request, self.max_array_items)
        # Show the model only the tools it may call now (none for answers and response_schema).
        prompt_tools = [plan.tool] if plan.tool else plan.tools
        prompt = render_prompt(lm.tokenizer, request.messages, prompt_tools, plan.instruction)
        compiled = runtime.grammar(plan.grammar_schema) if plan.grammar_schema is not None else None

        encoded = lm.tokenizer(prompt.text, return_tensors="pt", add_special_tokens=prompt.add_special_tokens)
        input_ids = encoded["input_ids"].to(lm.model.device)
        attention_mask = encoded["attention_mask"].to(lm.model.device)
        prompt_len = int(input_ids.shape[1])
        max_new = self._fit_context(prompt_len, self._max_new_tokens(request))

        stops = TRANSCRIPT_STOPS if prompt.style == "transcript" and compiled is None else ()
        constraint = (
            _GrammarConstraint(compiled, prompt_len, runtime, self.max_string_tokens)
            if compiled is not None
            else None
        )
        streamer = _TextStreamer(lm.tokenizer, set(runtime.stop_ids), stops, emit) if compiled is None else None
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "max_new_tokens": max_new,
            "eos_token_id": runtime.stop_ids,
            "pad_token_id": lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else runtime.stop_ids[0],
            "stopping_criteria": StoppingCriteriaList([_StopCriteria(lm.tokenizer, prompt_len, stops, cancel)]),
        }
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if constraint is not None:
            # generate() applies custom processors before temperature/top-k/top-p, so sampling
            # only ever chooses among tokens the grammar allows.
            kwargs["logits_processor"] = LogitsProcessorList([constraint])
        if streamer is not None:
            kwargs["streamer"] = streamer

        with runtime.generate_lock, torch.inference_mode():
            try:
                output = lm.model.generate(**kwargs)
            except LLMError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise LLMError(f"Generation with {self.spec!r} failed: {type(exc).__name__}: {exc}") from exc
        if cancel.is_set():
            raise LLMError("generation was cancelled")
        generated = output[0, prompt_len:].tolist()

        if streamer is not None:
            return ChatReply(content=streamer.text(final=True))
        assert constraint is not None
        return self._interpret_json(plan, request, generated, constraint, runtime, max_new)

    def _fit_context(self, prompt_len: int, max_new: int) -> int:
        assert self._runtime is not None
        limit = getattr(self._runtime.lm.model.config.get_text_config(), "max_position_embeddings", None)
        if not limit:
            return max_new
        if prompt_len + 8 > limit:
            raise LLMError(
                f"The prompt is {prompt_len} tokens, more than {self.spec!r} can read ({limit}); "
                "shorten the conversation or lower MMAGENT_LIMITS__TOOL_RESULT_CHARS"
            )
        return min(max_new, limit - prompt_len)

    def _interpret_json(
        self,
        plan: OutputPlan,
        request: ChatRequest,
        generated: list[int],
        constraint: _GrammarConstraint,
        runtime: _Runtime,
        max_new: int,
    ) -> ChatReply:
        what = {
            "json": "JSON reply",
            "arguments": f"arguments for the tool {plan.tool and tool_name(plan.tool)!s}",
            "choice": "tool call",
        }[plan.kind]
        if not constraint.finished(generated):
            raise LLMError(
                f"{self.spec} used all {max_new} new tokens without finishing its {what}; "
                "raise max_tokens (MMAGENT_LIMITS__MAX_NEW_TOKENS) or use a stronger model"
            )
        body = [t for t in generated if t not in runtime.stop_ids]
        text = runtime.lm.tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()
        try:
            # strict=False: xgrammar's length-bounded string rule admits raw control characters,
            # which strict JSON forbids; they are re-escaped when the value is serialised again.
            value = json.loads(text, strict=False)
        except ValueError as exc:
            raise LLMError(f"internal error: grammar-constrained output is not JSON: {text[:200]!r}") from exc

        if plan.kind == "json":
            self._require_valid(value, request.response_schema or {}, "reply")
            return ChatReply(content=json.dumps(value, ensure_ascii=False))
        if plan.kind == "arguments":
            assert plan.tool is not None
            self._require_valid(value, tool_parameters(plan.tool), f"arguments of {tool_name(plan.tool)}")
            return ChatReply(tool_calls=[ToolCall(name=tool_name(plan.tool), arguments=value)])
        if "answer" in value:
            return ChatReply(content=str(value["answer"]))
        tool = next(t for t in plan.tools if tool_name(t) == value["name"])
        self._require_valid(value["arguments"], tool_parameters(tool), f"arguments of {value['name']}")
        return ChatReply(tool_calls=[ToolCall(name=value["name"], arguments=value["arguments"])])

    def _require_valid(self, value: Any, schema: dict[str, Any], what: str) -> None:
        errors = validate_against_schema(value, schema)
        if errors:
            raise LLMError(f"{self.spec} produced {what} that violate the schema despite the grammar: {'; '.join(errors[:3])}")
