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

import functools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from agent.config import Settings
from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, Usage
from agent.llm.constrained import (  # noqa: F401 - re-exported: tests and benches import them from here
    TRANSCRIPT_STOPS,
    OutputPlan,
    _native_messages,
    _simplified_messages,
    _tools_text,
    complete_in_worker,
    max_new_tokens,
    plan_output,
    render_transcript,
    reply_from_json,
    tool_choice_schema,
    tool_name,
    tool_parameters,
    validate_against_schema,
)
from agent.llm.json_budget import JsonLexer
from agent.llm.text_cleanup import cut_at_stop, stream_holdback
from multimodal.llm_loader import LoadedLM, load_bundled_model, load_hf_model

logger = logging.getLogger(__name__)

Loader = Callable[[], LoadedLM]

# End-of-turn markers of common chat formats; generation stops on whichever this vocabulary has.
_END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|eom_id|>")
# The last two are our own tool-call and tool-result markers: a base model that writes them is
# inventing a tool round, and everything from there on is fiction.
# A base model inside a free string or array may never close it (greedy decoding loops). Strings
# get a token budget enforced while decoding, arrays a maxItems where the schema sets none.
# (A grammar-level maxLength would also work, but xgrammar's compile time grows ~28 ms per
# allowed character on Gemma's 262k vocabulary: 3.4 s per schema for maxLength 120.)
BUNDLED_MAX_STRING_TOKENS = 40
BUNDLED_MAX_ARRAY_ITEMS = 16


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
        self.lexer = JsonLexer()

    def accept(self, tokens: list[int]) -> None:
        for token in tokens[self.accepted :]:
            if self.matcher.is_terminated():
                break
            if not self.matcher.accept_token(token):
                raise LLMError(f"internal error: token {token} violates the output grammar")
            self.accepted += 1
            if self.string_budget is not None:
                self.lexer.feed(self.token_bytes[token])

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
        if self.string_budget is not None and self.lexer.in_string and self.lexer.string_tokens >= self.string_budget:
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


_cut_at_stop = cut_at_stop  # the old name, which tests import


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
        hold = stream_holdback(text, self.stops)
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
            return cls(spec, functools.partial(load_bundled_model, settings.models_cache_dir, settings.device), settings)
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
        return await complete_in_worker(self._complete_sync, request, on_token)

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
        max_new = self._fit_context(prompt_len, max_new_tokens(request, self.settings))

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
            reply = ChatReply(content=streamer.text(final=True))
        else:
            assert constraint is not None
            reply = self._interpret_json(plan, request, generated, constraint, runtime, max_new)
        reply.usage = Usage(prompt_tokens=prompt_len, completion_tokens=len(generated))
        return reply

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
        return reply_from_json(self.spec, plan, request, text)
