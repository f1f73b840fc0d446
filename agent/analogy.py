"""Calculator expressions by analogy with worked examples, for models too small to set them up.

A 270M base model copies the numbers of a word problem into an expression well, but it picks
the operation almost at random ("spent 68.4 out of 200" -> 200*68.4). A worked example that
reads like the request already holds the right operation: "I had 500, spent 120 and 75.5" ->
500-120-75.5 is the shape {0}-{1}-{2}, and the request's own quantities, in the order it states
them, fill the same shape. This is the retrieval-based template idea of classic word-problem
solvers: the examples' expressions, abstracted over the numbers their questions state, become
the candidates, and the model chooses among them under the grammar instead of inventing one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

import numpy as np

#: A quantity of a request, not part of a name ("GPT-2", "175B"), with its percent sign.
_QUANTITY = re.compile(r"(?<![A-Za-z_\-\d])(?<!\d[.,])(\d+(?:,\d{3})*(?:\.\d+)?)(?![A-Za-z_\d]|[.,]\d)\s*(%|percent\b|per cent\b)?", re.I)
#: "打八折" (80% of the price) and "八五折" state a number in Chinese numerals.
_CHINESE_DISCOUNT = re.compile(r"([一二三四五六七八九])([一二三四五六七八九]?)折")
_CHINESE_DIGITS = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")}
_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_TOKEN = re.compile(r"[a-z]+|[\u3400-\u9fff]")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LITERAL = re.compile(r"\d+(?:\.\d+)?")
_SLOT = re.compile(r"\{(\d+)\}")
_PERCENT_SLOT = re.compile(r"\{(\d+)\}%")


def quantities(text: str) -> list[str]:
    """The numbers `text` states, in order, as plain literals ("1,250" -> "1250"); a percentage
    keeps its sign ("35%") and a Chinese discount is its tenths ("打八折" -> "8", "八五折" -> "8.5")."""
    text = unicodedata.normalize("NFKC", text)
    found: list[tuple[int, str]] = []
    for match in _QUANTITY.finditer(text):
        found.append((match.start(), match.group(1).replace(",", "") + ("%" if match.group(2) else "")))
    for match in _CHINESE_DISCOUNT.finditer(text):
        tenths = _CHINESE_DIGITS[match.group(1)] + ("." + _CHINESE_DIGITS[match.group(2)] if match.group(2) else "")
        found.append((match.start(), tenths))
    return [value for _, value in sorted(found)]


def template(question: str, expression: str) -> str | None:
    """`expression` with each number its question states replaced by that quantity's slot
    ("{0}", "{1}" in the question's order); constants it adds (60 minutes, 100) stay. None when
    the question states no number, or one the expression does not use (the shape would drop
    a quantity of any request it is applied to)."""
    stated = [q.rstrip("%") for q in quantities(question)]
    if not stated or len(set(stated)) != len(stated):
        return None  # a repeated number makes the slots ambiguous
    used: set[int] = set()

    def slot(match: re.Match[str]) -> str:
        literal = match.group(0)
        if literal in stated:
            used.add(stated.index(literal))
            return "{%d}" % stated.index(literal)
        return literal

    shape = _LITERAL.sub(slot, expression)
    return shape if len(used) == len(stated) else None


def instantiate(shape: str, numbers: list[str]) -> str | None:
    """The shape filled with `numbers` (None when their count differs from the slots, or when
    a percentage would fill a slot for a plain number, or the other way round)."""
    slots = {int(s) for s in _SLOT.findall(shape)}
    if slots != set(range(len(numbers))):
        return None
    percents = {int(s) for s in _PERCENT_SLOT.findall(shape)}
    if any((i in percents) != n.endswith("%") for i, n in enumerate(numbers)):
        return None  # "走了 24 分钟" is no percentage: a shape with "{1}%" does not fit it

    def fill(match: re.Match[str]) -> str:
        return numbers[int(match.group(1))]

    text = _SLOT.sub(fill, shape)
    return text.replace("%%", "%")


def candidates(request: str, ranked: Iterable[tuple[str, dict]], limit: int = 4) -> list[str]:
    """Up to `limit` distinct expressions for `request`, from the worked examples in `ranked`
    (most similar first) whose questions state as many quantities as the request does."""
    numbers = quantities(request)
    found: list[str] = []
    if not numbers:
        return found
    for question, arguments in ranked:
        expression = arguments.get("expression")
        if not isinstance(expression, str) or not (shape := template(question, expression)):
            continue
        filled = instantiate(shape, numbers)
        if filled and filled not in found:
            found.append(filled)
            if len(found) == limit:
                break
    return found


def masked(text: str) -> str:
    """`text` with its numbers as "N": examples are alike by their wording, not their numbers."""
    return _ANY_NUMBER.sub("N", text)


def words(text: str) -> set[str]:
    """English words and word pairs, Chinese characters and character pairs: the cue words of
    a word problem ("left", "each", "how much do N", "还剩", "平均") decide its operation. The
    pairs keep the order: "a pen costs N. how much do N pens cost" is alike "a pencil costs N.
    how much do N pencils cost", not "a pack of N pens costs N. how much does one pen cost"."""
    text = masked(text).lower()
    chars = _CJK.findall(text)
    tokens = _TOKEN.findall(text)
    return set(tokens) | {a + b for a, b in zip(chars, chars[1:])} | {f"{a} {b}" for a, b in zip(tokens, tokens[1:]) if a.isascii() and b.isascii()}


def rank(request: str, demos: list[tuple[str, dict]], similarity: Callable[[str, list[str]], np.ndarray | None]) -> list[tuple[str, dict]]:
    """`demos` most alike to `request` first: sentence similarity of the texts without their
    numbers, plus the share of cue words they have in common (Jaccard). On the word-problem
    bench the two together put an example of the right shape first more often than either
    alone (bench/word_problems.py; docs/backends.md)."""
    scores = similarity(masked(request), [masked(q) for q, _ in demos])
    if scores is None:
        scores = np.zeros(len(demos))
    cues = words(request)
    overlap = np.asarray([len(cues & (w := words(q))) / max(1, len(cues | w)) for q, _ in demos])
    return [demos[i] for i in np.argsort(-(scores + overlap), kind="stable")]
