"""Negative rejection: do the retrieved passages contain what the question asks about?

Retrieval always returns its k nearest chunks, even for a question the documents never
discuss; a model shown them then answers from the nearest thing. The signals, all offline:

- a *name* in the question (a Latin term with inner capitals, digits or dots, an acronym: vLLM,
  Mixtral, 8x7B, GGUF, llama.cpp) that no chunk of the index contains: the documents cannot be
  about it;
- no content term of the question (nor of its glossary translation) in the index at all;
- low coverage: the IDF-weighted share of the question's terms (unknown terms count as the
  rarest) found in the best passage.

`bench/rag.py` prints the rejection rate on questions with no answer and the false rejections
on answerable ones (docs/knowledge.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from memory.knowledge.rewrite import glossary_translation, is_chinese

MIN_COVERAGE = 0.19  # answerable bench questions: 0.20 and up; no-answer ones mostly below
_NAME = re.compile(r"\b(?:[A-Za-z]+[0-9][A-Za-z0-9]*|[0-9]+[A-Za-z][A-Za-z0-9]*|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z][a-z]+[A-Z][A-Za-z0-9]*|[A-Z]{2,}[A-Za-z]*|[A-Za-z]+\.[A-Za-z]+)\b")


# Words about the request rather than its topic ("what do my notes say about LoRA"): left out of
# the coverage, or every phrasing around a question would count as missing content.
_REQUEST = re.compile(
    r"\b(?:notes?|documents?|docs?|files?|knowledge[ -]base|passages?|sources?|say|says|said|tell|find|look|search|"
    r"explain|explains|describe|according|mention|mentions|written|write|wrote|me|my|mine|our|please|up)\b"
    r"|我的笔记|笔记里|笔记中|笔记|文档里|文档中|文档|资料库|知识库|资料|根据|在我的|我的|查一下|找一下|搜一下|告诉我|里面|关于|内容|一下|说了|提到",
    re.IGNORECASE,
)


@dataclass
class Evidence:
    found: bool
    coverage: float
    missing: list[str] = field(default_factory=list)  # names of the question that no chunk has
    reason: str = ""


_LATIN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z\-]{2,}(?![A-Za-z0-9])")
_TITLE = re.compile(r"(?<=[a-z0-9,;:] )[A-Z][a-z]{2,}\b")


def names(query: str) -> list[str]:
    """Terms that name something: acronyms and code-like names anywhere, every Latin word of a
    Chinese question (a term kept in English), capitalised words inside an English sentence."""
    found = _NAME.findall(query)
    found += _LATIN.findall(query) if is_chinese(query) else _TITLE.findall(query)
    return list(dict.fromkeys(found))


def missing_names(text: str, index: Any) -> list[str]:
    """The names in `text` that no chunk of the index contains."""
    return [n for n in names(text) if not any(t in index.vocab and index.idf(t) > 0 for t in index.tokens(n))]


def assess(query: str, passages: list[Any], index: Any, request: str = "") -> Evidence:
    """`passages`: hits (or anything with .text/.heading, or dicts with "text"/"heading");
    `index`: the KeywordIndex (tokens, idf, vocab); `request`: the user's own words, when the
    query was written by a model.

    The user's words decide: a small model's query can drop a name the user asked about (the
    request's check then rejects) or add a word of its own ("RLHF 3rd step", "according to my
    documents") that no document has, which must not reject what the request's words find."""
    if not passages:
        return Evidence(False, 0.0, reason="nothing was retrieved")
    if not request.strip() or request.strip() == query.strip():
        return judge(query, passages, index)
    by_request = judge(request, passages, index)
    if by_request.found or by_request.missing:
        return by_request
    by_query = judge(query, passages, index)
    return by_query if by_query.found else by_request


def judge(query: str, passages: list[Any], index: Any) -> Evidence:
    """Whether `passages` hold what `query` asks: every name it uses occurs in the documents,
    and the best passage covers enough of its terms (weighted by rarity)."""
    missing = missing_names(query, index)
    if missing:
        return Evidence(False, 0.0, missing, f"the documents never mention {', '.join(missing)}")
    topic = _REQUEST.sub(" ", query)
    texts = [topic]
    translated = glossary_translation(topic)
    if translated and not is_chinese(query):
        texts.append(translated)
    n = max(1, len(index))
    rarest = math.log(1.0 + (n + 0.5) / 0.5)
    weights: dict[str, float] = {}
    unknown_words: list[str] = []
    for text in texts:
        for tok in index.tokens(text):
            if tok in index.vocab and index.idf(tok) > 0:
                weights[_stem(tok)] = max(weights.get(_stem(tok), 0.0), index.idf(tok))
            elif _CJK_TOKEN.match(tok):
                weights[tok] = rarest  # a Chinese term no chunk has: the documents lack the topic
            else:
                unknown_words.append(_stem(tok))  # an English word of the question's phrasing, maybe
    if not weights:
        return Evidence(False, 0.0, reason="no term of the question occurs in the documents")
    # A word no chunk has counts as the rarest term, but matched by its stem, so that phrasing
    # ("spin" against "spins") is not taken for a missing topic.
    for word in unknown_words:
        weights.setdefault(word, rarest)
    total = sum(weights.values()) or 1.0
    best = 0.0
    for passage in passages:
        text, heading = _parts(passage)
        tokens = {_stem(t) for t in index.tokens(f"{heading}\n{text}")}
        best = max(best, sum(w for t, w in weights.items() if t in tokens) / total)
    if best < MIN_COVERAGE:
        return Evidence(False, best, reason=f"the best passage covers {best:.0%} of the question's terms")
    return Evidence(True, best)


_CJK_TOKEN = re.compile(r"[\u3400-\u9fff]")
_SUFFIX = re.compile(r"(?<=[a-z]{3})(?:ing|ed|es|s)$")


def _stem(token: str) -> str:
    """A crude English stem, so that "spin" meets "spins" and "steps" meets "step"."""
    return token if _CJK_TOKEN.match(token) else _SUFFIX.sub("", token)


def _parts(passage: Any) -> tuple[str, str]:
    if isinstance(passage, dict):
        return str(passage.get("text", "")), str(passage.get("heading", ""))
    return str(getattr(passage, "text", "")), str(getattr(passage, "heading", ""))
