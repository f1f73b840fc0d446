"""The output grammar of the transformers backend: a logits processor that masks every token the
xgrammar grammar forbids, and closes runaway strings of weak models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import LogitsProcessor

from agent.llm.base import LLMError
from agent.llm.json_budget import JsonLexer

if TYPE_CHECKING:
    from agent.llm.local_generation import _Runtime


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
