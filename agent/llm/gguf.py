"""The llama.cpp backend: `bundled` (Gemma 3 270M, a base model) and `gguf:<file>`.

Decoding happens here, token by token, on the logits llama.cpp returns:

* JSON replies and tool calls are constrained by an xgrammar matcher compiled from the JSON
  schema (the same output plans as the transformers backend, `agent/llm/constrained.py`), made
  finite by `agent/llm/json_budget.py`: strings close after a token budget, numbers end after
  16 tokens, arrays are capped, and the token budget of a call is raised to the schema's worst
  case. A constrained reply therefore always closes; "used all its tokens" cannot happen.
* Text forced by the grammar (`{"name": "calculator", "arguments": {"expression": "`) is fed
  in one batch (jump-forward decoding) instead of one forward pass per token.
* Free text stops at the end-of-turn token, at the transcript's stop strings, and at
  `request.stop`; a reply that starts repeating itself is cut at the repetition.
* A request with `completion_prompt` (what the graph builds for base models: few-shot
  demonstrations, see agent/prompts.py) is continued as it is; other requests are rendered as
  the plain-text transcript of `agent/llm/constrained.py` (base models have no chat template).
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.config import Settings
from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, Usage
from agent.llm.constrained import (
    OutputPlan,
    TRANSCRIPT_STOPS,
    compile_json_grammar,
    complete_in_worker,
    max_new_tokens,
    plan_output,
    render_transcript,
    reply_from_json,
)
from agent.llm.json_budget import Budget, JsonLexer, fit_budget, grammar_schema
from agent.llm.text_cleanup import cut_at_stop, cut_repetition, stream_holdback
from multimodal.errors import ModelLoadError

logger = logging.getLogger(__name__)

MAX_STRING_TOKENS = 40
MAX_ARRAY_ITEMS = 8
MAX_NUMBER_TOKENS = 16


class _Runtime:
    """A loaded GGUF model, its xgrammar compiler and compiled-grammar cache."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.stop_ids: list[int] = model.stop_ids()
        self._grammar_lock = threading.Lock()
        self._compiler: Any = None
        self._grammars: dict[str, Any] = {}
        self.token_bytes: list[bytes] = []
        self.quote_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.number_continuations: np.ndarray = np.zeros(0, dtype=bool)

    def grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, ensure_ascii=False, sort_keys=True)
        with self._grammar_lock:
            if key in self._grammars:
                return self._grammars[key]
            import xgrammar as xgr

            if self._compiler is None:
                self.token_bytes = self.model.token_bytes()
                info = xgr.TokenizerInfo(
                    self.token_bytes, xgr.VocabType.RAW, vocab_size=self.model.n_vocab, stop_token_ids=self.stop_ids
                )
                self._compiler = xgr.GrammarCompiler(info)
                self.quote_ids = np.asarray([i for i, b in enumerate(self.token_bytes) if b == b'"'], dtype=np.int64)
                # Tokens that would extend a JSON number: masked once a number has had its budget.
                self.number_continuations = np.asarray(
                    [bool(b) and b[:1] in b"0123456789.eE+-" for b in self.token_bytes], dtype=bool
                )
            compiled = self._grammars[key] = compile_json_grammar(self._compiler, schema, key)
            return compiled


class JsonConstraint:
    """Grammar mask plus the budgets of json_budget: closes strings and numbers that run on."""

    def __init__(self, compiled: Any, runtime: _Runtime, budget: Budget) -> None:
        import torch
        import xgrammar as xgr

        self._torch, self._xgr = torch, xgr
        self.runtime = runtime
        self.matcher = xgr.GrammarMatcher(compiled, override_stop_tokens=runtime.stop_ids)
        self.bitmask = xgr.allocate_token_bitmask(1, runtime.model.n_vocab)
        self.budget = budget
        self.lexer = JsonLexer()

    def done(self) -> bool:
        return self.matcher.is_terminated()

    def finished(self) -> bool:
        return self.matcher.is_terminated() or self.matcher.is_completed()

    def accept(self, token: int) -> None:
        if not self.matcher.accept_token(token):
            raise LLMError(f"internal error: token {token} violates the output grammar")
        self.lexer.feed(self.runtime.token_bytes[token])

    def forced_text(self) -> str:
        """Text the grammar allows as the only continuation (jump-forward), else ""."""
        return self.matcher.find_jump_forward_string()

    def accept_text(self, text: str) -> None:
        if not self.matcher.accept_string(text):
            raise LLMError("internal error: forced text violates the output grammar")
        self.lexer.feed(text.encode("utf-8"))

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """A masked copy of `logits`: only tokens the grammar (and the budgets) allow."""
        self.matcher.fill_next_token_bitmask(self.bitmask)
        scores = self._torch.from_numpy(np.array(logits, dtype=np.float32, copy=True)).unsqueeze(0)
        self._xgr.apply_token_bitmask_inplace(scores, self.bitmask)
        out = scores.numpy()[0]
        if self.lexer.in_string and self.lexer.string_tokens >= self.budget.string_tokens:
            quotes = self.runtime.quote_ids
            allowed = quotes[np.isfinite(out[quotes])]
            if allowed.size:
                forced = np.full_like(out, -np.inf)
                forced[allowed[0]] = 0.0
                return forced
        if self.lexer.in_number and self.lexer.number_tokens >= self.budget.number_tokens:
            ended = out.copy()
            ended[self.runtime.number_continuations] = -np.inf
            if np.isfinite(ended).any():
                return ended
        return out


def _pick(scores: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(scores))
    z = scores.astype(np.float64) / temperature
    z -= np.max(z)
    p = np.exp(z)
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


class GGUFBackend(ChatBackend):
    """A GGUF model on llama.cpp in this process; JSON under a grammar, base-model prompts."""

    constrained = True
    #: Prompts are continued as text: the graph may send completion-style prompts.
    completion_style = True

    def __init__(self, spec: str, loader: Callable[[], Any], settings: Settings | None = None, *, chooses_tools: bool = False) -> None:
        self.spec = spec
        self.settings = settings
        # A 270M base model cannot pick among tools; the router picks for it.
        self.chooses_tools = chooses_tools
        self._loader = loader
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()
        self._rng = np.random.default_rng(0)

    @classmethod
    def from_spec(cls, spec: str, settings: Settings) -> GGUFBackend:
        from multimodal.gguf_runtime import load_bundled_gguf, load_gguf

        if spec == "bundled":
            return cls(spec, functools.partial(load_bundled_gguf, settings.models_cache_dir), settings)
        if spec.startswith("gguf:") and spec[5:].strip():
            return cls(spec, functools.partial(load_gguf, spec[5:].strip()), settings, chooses_tools=True)
        raise LLMError(f"GGUFBackend handles 'bundled' and 'gguf:<file.gguf>', not {spec!r}")

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    def _ensure_runtime(self) -> _Runtime:
        if self._runtime is None:
            with self._load_lock:
                if self._runtime is None:
                    try:
                        self._runtime = _Runtime(self._loader())
                        self._runtime.model.token_bytes()
                        # 262k vocabulary entries would be re-scanned by every full garbage
                        # collection of a long-lived process; they live as long as the model.
                        gc.freeze()
                    except ModelLoadError as exc:
                        raise LLMError(f"{exc}. Or choose another model with --llm / MMAGENT_LLM.") from exc
                    except Exception as exc:  # noqa: BLE001
                        raise LLMError(f"Loading the model for {self.spec!r} failed: {type(exc).__name__}: {exc}") from exc
        return self._runtime

    def warm_up(self) -> None:
        """Load the model and the grammar compiler now (seconds), e.g. while the app starts."""
        runtime = self._ensure_runtime()
        runtime.grammar({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]})

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"spec": self.spec, "loaded": self.loaded, "constrained": True, "runtime": "llama.cpp"}
        if self._runtime is not None:
            m = self._runtime.model
            info.update(source=m.source, device="cpu", dtype="gguf", origin=m.origin, load_seconds=round(m.load_seconds, 2))
        else:
            info.update(source="gemma3-270m (bundled GGUF)" if self.spec == "bundled" else self.spec[5:], device="cpu", dtype="gguf")
        return info

    async def aclose(self) -> None:
        with self._load_lock:
            self._runtime = None

    async def complete(self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default") -> ChatReply:
        return await complete_in_worker(self._complete_sync, request, on_token)

    # -- the work, in a worker thread ---------------------------------------------------------

    def _complete_sync(self, request: ChatRequest, emit: Callable[[str], None] | None, cancel: threading.Event) -> ChatReply:
        runtime = self._ensure_runtime()
        plan = plan_output(request)
        if request.completion_prompt is not None:
            text, stops = request.completion_prompt, tuple(request.stop)
        else:
            prompt_tools = [plan.tool] if plan.tool else plan.tools
            text = render_transcript(request.messages, prompt_tools, plan.instruction)
            stops = (*TRANSCRIPT_STOPS, *request.stop)
        prompt = runtime.model.tokenize(text, add_bos=True)
        max_new = max_new_tokens(request, self.settings)
        constraint = None
        if plan.grammar_schema is not None:
            schema = grammar_schema(plan.grammar_schema, MAX_ARRAY_ITEMS)
            budget = fit_budget(schema, max_new, MAX_STRING_TOKENS, MAX_NUMBER_TOKENS)
            max_new = max(max_new, budget.worst_case)
            constraint = JsonConstraint(runtime.grammar(schema), runtime, budget)
        room = runtime.model.n_ctx - len(prompt) - 1
        if room < (budget.worst_case if constraint else 8):
            raise LLMError(
                f"The prompt is {len(prompt)} tokens, too long for {self.spec!r} (context {runtime.model.n_ctx}); "
                "shorten the conversation or lower MMAGENT_MEMORY__CONTEXT_TOKENS"
            )
        max_new = min(max_new, room)
        with runtime.model.lock:
            generated = self._decode(runtime, prompt, max_new, constraint, stops, emit, cancel, request.temperature)
        if constraint is None:
            reply = ChatReply(content=self._visible_text(runtime, generated, stops))
        else:
            reply = self._interpret(plan, request, runtime, generated, constraint)
        reply.usage = Usage(prompt_tokens=len(prompt), completion_tokens=len(generated))
        return reply

    def _decode(
        self, runtime: _Runtime, prompt: list[int], max_new: int, constraint: JsonConstraint | None,
        stops: tuple[str, ...], emit: Callable[[str], None] | None, cancel: threading.Event, temperature: float,
    ) -> list[int]:
        model = runtime.model
        stop_ids = set(runtime.stop_ids)
        try:
            logits = model.prefill(prompt)
        except Exception as exc:  # noqa: BLE001
            raise LLMError(f"Generation with {self.spec!r} failed: {type(exc).__name__}: {exc}") from exc
        out: list[int] = []
        sent = 0
        while len(out) < max_new:
            if cancel.is_set():
                raise LLMError("generation was cancelled")
            if constraint is not None:
                if constraint.done():
                    break
                forced = constraint.forced_text()
                if forced and not constraint.lexer.in_string:
                    tokens = model.tokenize(forced, add_bos=False)
                    constraint.accept_text(forced)
                    out.extend(tokens)
                    logits = model.extend(tokens)
                    continue
                token = _pick(constraint.mask(logits), temperature, self._rng)
                if token in stop_ids:
                    constraint.accept(token)
                    break
                constraint.accept(token)
            else:
                token = _pick(logits, temperature, self._rng)
                if token in stop_ids:
                    break
            out.append(token)
            if constraint is None:
                text = model.detokenize(out)
                if _hit_stop(text, stops) or cut_repetition(text) != text.rstrip():
                    break
                if emit is not None:
                    visible = _holdback(text, stops)
                    if len(visible) > sent:
                        emit(visible[sent:])
                        sent = len(visible)
            logits = model.extend([token])
        return out

    def _visible_text(self, runtime: _Runtime, generated: list[int], stops: tuple[str, ...]) -> str:
        text = runtime.model.detokenize([t for t in generated if t not in runtime.stop_ids])
        return cut_repetition(cut_at_stop(text, stops)).strip()

    def _interpret(self, plan: OutputPlan, request: ChatRequest, runtime: _Runtime, generated: list[int], constraint: JsonConstraint) -> ChatReply:
        if not constraint.finished():
            # json_budget makes this unreachable; kept so a bug shows as an error, not bad JSON.
            raise LLMError(f"internal error: {self.spec} did not finish a grammar-constrained reply")
        text = runtime.model.detokenize([t for t in generated if t not in runtime.stop_ids]).strip()
        return reply_from_json(self.spec, plan, request, text)


def _hit_stop(text: str, stops: tuple[str, ...]) -> bool:
    return any(s in text for s in stops)


def _holdback(text: str, stops: tuple[str, ...]) -> str:
    """What may be shown of streamed text: nothing that could still become a stop string."""
    return text[: len(text) - stream_holdback(text, stops)].rstrip("\ufffd").rstrip()
