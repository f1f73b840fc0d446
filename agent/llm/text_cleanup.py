"""Cutting the loops small models fall into, from generated text.

Greedy decoding with a small model repeats itself: the same sentence ten times ("I'm sorry, I
don't know." ...), the same line, or a short stretch of characters over and over. The first
occurrence is the reply; everything from the first repeat on is noise.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s*")
#: A stretch of 1..30 characters repeated at least this many times in a row is a loop.
_LOOP = re.compile(r"(.{1,30}?)\1{3,}", re.S)
_MIN_SENTENCE = 6


def cut_repetition(text: str) -> str:
    """`text` up to the first repeated sentence or line, or the first character loop."""
    cut = len(text)
    seen: set[str] = set()
    pos = 0
    for piece in _SENTENCE_END.split(text):
        start = text.find(piece, pos)
        pos = start + len(piece)
        key = " ".join(piece.lower().split())
        if len(key) < _MIN_SENTENCE:
            continue
        if key in seen:
            cut = min(cut, start)
            break
        seen.add(key)
    loop = _LOOP.search(text)
    if loop and len(loop.group(1).strip()) > 0 and not loop.group(1).isdigit():
        cut = min(cut, loop.start() + len(loop.group(1)))
    return text[:cut].rstrip()


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """`text` before the first of the stop strings."""
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def stream_holdback(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of streamed text to hold back: they may still become a stop string."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
