"""Counting prompt tokens: the backend's own tokenizer when it exposes one, else an estimate.

The estimate must not undercount Chinese: a CJK character is often one token or more, while
English averages about four characters a token. So: CJK characters / 1.5 + other characters / 4,
rounded up, plus a small per-message overhead added by the callers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

TokenCounter = Callable[[str], int]

# CJK ideographs, kana, hangul and full-width punctuation: the scripts that tokenise densely.
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]")

MESSAGE_OVERHEAD = 4  # role markers and separators a chat template adds per message


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    if text.isascii():  # most texts, checked in C: no need to look for dense scripts
        return math.ceil(len(text) / 4)
    cjk = len(_CJK.findall(text))
    return math.ceil(cjk / 1.5 + (len(text) - cjk) / 4)


def token_counter(backend: Any = None) -> TokenCounter:
    """The backend's counter (`count_tokens(text)` or a `tokenizer` with `encode`), else the estimate."""
    count = getattr(backend, "count_tokens", None)
    if callable(count):
        return count
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is not None and callable(getattr(tokenizer, "encode", None)):
        return lambda text: len(tokenizer.encode(text)) if text else 0
    return estimate_tokens


def truncate_to_tokens(text: str, limit: int, count: TokenCounter) -> str:
    """`text` cut to about `limit` tokens, with a note saying how much was left out."""
    total = count(text)
    if total <= limit:
        return text
    keep = max(0, int(len(text) * limit / total))
    while keep > 0 and count(text[:keep]) > limit:  # the proportional guess can overshoot on mixed text
        keep = int(keep * 0.9)
    return text[:keep] + f"\n[truncated: {len(text) - keep} more characters not shown]"
