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
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from agent.config import Settings
from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, Usage
from agent.llm.constrained import (  # noqa: F401 - re-exported: tests and benches import them from here
    TRANSCRIPT_STOPS,
    OutputPlan,
    _native_messages,
    _simplified_messages,
    _tools_text,
    complete_in_worker,
    render_transcript,
    max_new_tokens,
    plan_output,
    reply_from_json,
    tool_choice_schema,
    tool_name,
    tool_parameters,
    validate_against_schema,
)
from agent.llm.local_generation import _cut_at_stop, _Runtime, _StopCriteria, _TextStreamer  # noqa: F401 - _cut_at_stop: tests
from agent.llm.local_grammar import _GrammarConstraint
from agent.llm.local_prompt import RenderedPrompt, render_prompt  # noqa: F401 - re-exported
from multimodal.llm_loader import LoadedLM, load_bundled_model, load_hf_model

logger = logging.getLogger(__name__)

Loader = Callable[[], LoadedLM]

# A base model inside a free string or array may never close it (greedy decoding loops). Strings
# get a token budget enforced while decoding, arrays a maxItems where the schema sets none.
# (A grammar-level maxLength would also work, but xgrammar's compile time grows ~28 ms per
# allowed character on Gemma's 262k vocabulary: 3.4 s per schema for maxLength 120.)
BUNDLED_MAX_STRING_TOKENS = 40
BUNDLED_MAX_ARRAY_ITEMS = 16


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
