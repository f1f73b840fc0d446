"""Keyword search: BM25 (bm25s) with a tokenizer that does not assume spaces.

Chinese runs become overlapping character bigrams (and single characters for one-character
runs); Latin words and numbers become lowercase tokens without English stopwords. Bigrams need
no dictionary and match as well as jieba words on our notes while tokenizing far faster (see
docs/knowledge.md); `jieba` is one config line away. The index lives in memory and is rebuilt
from the store when the store's generation changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[a-zA-Z0-9][a-zA-Z0-9_\-.]*[a-zA-Z0-9]|[a-zA-Z0-9]")
_CJK_RUN = re.compile(rf"[{_CJK}]+")
# Question words and particles: as bigrams they match everywhere ("什么" is in every FAQ heading)
# and drown the content terms of short questions. Split Chinese runs on them before pairing.
_CJK_STOP = re.compile(r"为什么|是什么|什么是|什么|哪些|哪个|哪两种|哪几种|如何|怎么|怎样|请问|介绍一下|介绍下|一下|有哪|的|了|吗|呢|吧|啊|呀")


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s' list has no question words; in a mostly-Chinese index "what" is rare, so it would
    # get a high IDF and pull in the few English chunks that happen to contain it.
    return frozenset(STOPWORDS_EN) | {"what", "which", "how", "why", "who", "whom", "when", "where", "does", "do", "did"}


def bigram_tokens(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        if _CJK_RUN.fullmatch(tok):
            for run in _CJK_STOP.split(tok):
                out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            tok = tok.lower()
            if tok not in stop:
                out.append(tok)
    return out


def jieba_tokens(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    import jieba

    out = []
    for tok in jieba.lcut(text):
        tok = tok.strip().lower()
        if tok and _TOKEN.match(tok) and tok not in stop and not _CJK_STOP.fullmatch(tok):
            out.append(tok)
    return out


def tokenizer(mode: str) -> Callable[[str], list[str]]:
    stop = _stopwords()
    if mode == "jieba":
        import jieba

        jieba.setLogLevel(logging.WARNING)  # it prints its dictionary loading otherwise
        return lambda text: jieba_tokens(text, stop)
    return lambda text: bigram_tokens(text, stop)


class KeywordIndex:
    """BM25 over (id, text, metadata) rows; searches can be limited by metadata equality.

    Each row's token ids are kept, so `update` after an ingest tokenizes only the new chunks and
    re-runs only the BM25 matrix build (about 10 s at 100k chunks on 2 cores, against 27 s from
    scratch); bm25s has no incremental add, and a full rebuild keeps scores exact.
    """

    def __init__(self, mode: str = "bigram") -> None:
        self._tokenize = tokenizer(mode)
        self.vocab: dict[str, int] = {}
        self._rows: dict[str, tuple[list[int], dict[str, Any]]] = {}
        self.ids: list[str] = []
        self.metadatas: list[dict[str, Any]] = []
        self.generation: str | None = None
        self._bm25: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def _token_ids(self, text: str) -> list[int]:
        vocab = self.vocab
        # An empty token list would make bm25s drop the document and shift every later index.
        return [vocab.setdefault(t, len(vocab)) for t in self._tokenize(text)] or [vocab.setdefault("\x00", len(vocab))]

    def update(self, ids: Sequence[str], fetch: Callable[[list[str]], Iterable[tuple[str, str, dict[str, Any]]]],
               generation: str | None = None) -> None:
        """Make the index hold exactly `ids`; `fetch(new_ids)` yields (id, text, metadata) for
        the rows it has not seen yet."""
        import bm25s
        from bm25s.tokenization import Tokenized

        wanted = set(ids)
        for gone in [i for i in self._rows if i not in wanted]:
            del self._rows[gone]
        new = [i for i in ids if i not in self._rows]
        for chunk_id, text, meta in fetch(new) if new else ():
            self._rows[chunk_id] = (self._token_ids(text), meta)
        self.ids = [i for i in ids if i in self._rows]
        self.metadatas = [self._rows[i][1] for i in self.ids]
        self._bm25 = None
        if self.ids:
            bm25 = bm25s.BM25()
            # A copy: bm25s adds its empty token to the dict it is given.
            bm25.index(Tokenized(ids=[self._rows[i][0] for i in self.ids], vocab=dict(self.vocab)), show_progress=False)
            self._bm25 = bm25
        self.generation = generation

    def _mask(self, where: dict[str, Any] | None) -> np.ndarray | None:
        if not where:
            return None
        keep = [all(m.get(k) in v if isinstance(v, list) else m.get(k) == v for k, v in where.items()) for m in self.metadatas]
        return np.asarray(keep, dtype=np.float32)

    def search(self, query: str, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """Top `n` (id, BM25 score) with a positive score; `where` is {field: value, ...}."""
        tokens = [self.vocab[t] for t in self._tokenize(query) if t in self.vocab]
        if self._bm25 is None or not tokens:
            return []
        mask = self._mask(where)
        if mask is not None and not mask.any():
            return []
        n = min(n, len(self.ids))
        # Token ids, not a Tokenized: bm25s would invert the whole vocabulary on every query.
        docs, scores = self._bm25.retrieve([tokens], k=n, show_progress=False, weight_mask=mask, n_threads=0)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def build_index(ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[dict[str, Any]], mode: str = "bigram") -> KeywordIndex:
    """A one-off index over in-memory rows (tests, benchmarks)."""
    rows = {i: (t, m) for i, t, m in zip(ids, texts, metadatas)}
    index = KeywordIndex(mode)
    index.update(list(ids), lambda new: ((i, *rows[i]) for i in new))
    return index
