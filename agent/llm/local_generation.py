"""Generation plumbing of the transformers backend: the loaded model's runtime (stop tokens,
generation lock, grammar cache), stop strings, and the streamer of visible text."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import torch
from transformers import StoppingCriteria

from agent.llm.base import LLMError
from agent.llm.constrained import compile_json_grammar
from agent.llm.text_cleanup import cut_at_stop, stream_holdback
from multimodal.llm_loader import LoadedLM

# End-of-turn markers of common chat formats; generation stops on whichever this vocabulary has.
_END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|eom_id|>")


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
            compiled = self._grammars[key] = compile_json_grammar(self._compiler, schema, key)
            return compiled
