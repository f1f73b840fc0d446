"""Keyword search: BM25 (bm25s) with a tokenizer that does not assume spaces.

Chinese runs become overlapping character bigrams (and single characters for one-character
runs); Latin words and numbers become lowercase tokens without English stopwords. Bigrams need
no dictionary and match as well as jieba words on our notes while tokenizing far faster (see
docs/knowledge.md); `jieba` is one config line away. Traditional characters are folded to
simplified on both sides. The index is saved next to the store (`save`/`load`), so a restarted
app reads it instead of re-tokenizing every chunk; it is brought up to date from the store when
the store's generation changes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
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


@lru_cache(maxsize=1)
def _simplified() -> dict[int, str]:
    from hanziconv import charmap

    return str.maketrans(charmap.traditional_charmap, charmap.simplified_charmap)


def fold(text: str) -> str:
    """Traditional characters as simplified: notes mix both scripts, and "幻覺" must match "幻觉"."""
    return text.translate(_simplified())


def bigram_tokens(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    for tok in _TOKEN.findall(fold(text)):
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
    for tok in jieba.lcut(fold(text)):
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
        self._df: np.ndarray = np.zeros(0, dtype=np.int32)
        self._columns: dict[str, tuple[np.ndarray, dict[Any, int]]] = {}
        self.chinese_share = 0.0
        self.mode = mode

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
            self._rows[chunk_id] = (np.asarray(self._token_ids(text), dtype=np.int32), meta)
        self.ids = [i for i in ids if i in self._rows]
        self.metadatas = [self._rows[i][1] for i in self.ids]
        self._bm25 = None
        if self.ids:
            bm25 = bm25s.BM25()
            # A copy: bm25s adds its empty token to the dict it is given.
            bm25.index(Tokenized(ids=[self._rows[i][0] for i in self.ids], vocab=dict(self.vocab)), show_progress=False)
            self._bm25 = bm25
        self._count_documents()
        self._columns = {}
        self.generation = generation

    def _count_documents(self) -> None:
        """Document frequency per token id (the reranker's IDF), and the share of Chinese chunks."""
        rows = [np.unique(self._rows[i][0]) for i in self.ids]
        flat = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)
        self._df = np.bincount(flat, minlength=len(self.vocab)).astype(np.int32)
        chinese = np.fromiter((bool(_CJK_RUN.search(t)) for t in self.vocab), dtype=bool, count=len(self.vocab))
        lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
        if len(flat):
            cjk_per_row = np.add.reduceat(chinese[flat].astype(np.int64), np.concatenate([[0], np.cumsum(lengths)[:-1]]))
            self.chinese_share = float(np.mean(cjk_per_row * 2 > lengths))
        else:
            self.chinese_share = 0.0

    def languages(self, min_share: float = 0.2) -> set[str]:
        """The languages ("zh", "en") of at least `min_share` of the chunks, by their tokens
        (a chunk is Chinese when most of its distinct tokens are)."""
        if not self.ids:
            return set()
        return {lang for lang, share in (("zh", self.chinese_share), ("en", 1.0 - self.chinese_share)) if share >= min_share}

    def tokens(self, text: str) -> list[str]:
        return self._tokenize(text)

    def idf(self, token: str) -> float:
        """BM25's IDF of a token; 0 for one no chunk has (it cannot tell chunks apart)."""
        index = self.vocab.get(token)
        df = int(self._df[index]) if index is not None and index < len(self._df) else 0
        if df == 0:
            return 0.0
        n = len(self.ids)
        return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))

    # ---------------------------------------------------------------- persistence

    def save(self, folder: Path) -> None:
        """Write the index to `folder` (replaced whole: a new folder renamed over the old, so a
        crash mid-write leaves the previous copy, never half of one)."""
        import json
        import shutil

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        lengths = np.asarray([len(self._rows[i][0]) for i in self.ids], dtype=np.int64)
        flat = np.concatenate([self._rows[i][0] for i in self.ids]) if self.ids else np.zeros(0, dtype=np.int32)
        np.save(tmp / "tokens.npy", flat)
        np.save(tmp / "lengths.npy", lengths)
        vocab = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = {"format": 1, "mode": self.mode, "generation": self.generation, "ids": self.ids, "metadatas": self.metadatas, "vocab": vocab}
        (tmp / "rows.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        if self._bm25 is not None:
            self._bm25.save(str(tmp / "bm25"), show_progress=False)
        old = folder.with_name(folder.name + f".old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, mode: str) -> KeywordIndex | None:
        """The index saved in `folder`, or None when there is none (or it is unreadable, or of
        another tokenizer): the caller then builds it from the store."""
        import json

        import bm25s

        folder = Path(folder)
        if not (folder / "rows.json").is_file():
            return None
        try:
            meta = json.loads((folder / "rows.json").read_text(encoding="utf-8"))
            if meta.get("format") != 1 or meta.get("mode") != mode:
                return None
            flat = np.load(folder / "tokens.npy")
            lengths = np.load(folder / "lengths.npy")
            index = cls(mode)
            index.vocab = {t: i for i, t in enumerate(meta["vocab"])}
            index.ids = list(meta["ids"])
            index.metadatas = list(meta["metadatas"])
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            index._rows = {i: (flat[offsets[n] : offsets[n + 1]], m) for n, (i, m) in enumerate(zip(index.ids, index.metadatas))}
            if index.ids:
                index._bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
            index._count_documents()
            index.generation = meta.get("generation")
            return index
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("keyword index at %s is unreadable; rebuilding it from the store", folder)
            return None

    def _column(self, field: str) -> tuple[np.ndarray, dict[Any, int]]:
        """A metadata field as integer codes per row (built once per index state): a filter is
        then one vectorised comparison, not a Python loop over 100k rows per query."""
        cached = self._columns.get(field)
        if cached is None:
            codes: dict[Any, int] = {}
            column = np.fromiter((codes.setdefault(m.get(field), len(codes)) for m in self.metadatas), dtype=np.int32, count=len(self.metadatas))
            cached = self._columns[field] = (column, codes)
        return cached

    def _mask(self, where: dict[str, Any] | None) -> np.ndarray | None:
        if not where:
            return None
        keep = np.ones(len(self.metadatas), dtype=bool)
        for field, value in where.items():
            column, codes = self._column(field)
            wanted = [codes[v] for v in (value if isinstance(value, list) else [value]) if v in codes]
            keep &= np.isin(column, wanted)
        return keep.astype(np.float32)

    def search(self, query: str, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """Top `n` (id, BM25 score) with a positive score; `where` is {field: value, ...}."""
        return self.search_many([query], n, where)[0]

    def search_many(self, queries: Sequence[str], n: int, where: dict[str, Any] | None = None) -> list[list[tuple[str, float]]]:
        """`search` for several queries at once (one metadata mask, one bm25s call)."""
        out: list[list[tuple[str, float]]] = [[] for _ in queries]
        tokens = [[self.vocab[t] for t in self._tokenize(q) if t in self.vocab] for q in queries]
        asked = [i for i, t in enumerate(tokens) if t]
        if self._bm25 is None or not asked:
            return out
        mask = self._mask(where)
        if mask is not None and not mask.any():
            return out
        n = min(n, len(self.ids))
        # Token ids, not a Tokenized: bm25s would invert the whole vocabulary on every query.
        docs, scores = self._bm25.retrieve([tokens[i] for i in asked], k=n, show_progress=False, weight_mask=mask, n_threads=0)
        for row, i in enumerate(asked):
            out[i] = [(self.ids[int(d)], float(s)) for d, s in zip(docs[row], scores[row]) if s > 0]
        return out

    def token_ids(self, chunk_id: str) -> np.ndarray | None:
        """The token ids of an indexed chunk (its heading path and text), or None."""
        row = self._rows.get(chunk_id)
        return None if row is None else row[0]


def build_index(ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[dict[str, Any]], mode: str = "bigram") -> KeywordIndex:
    """A one-off index over in-memory rows (tests, benchmarks)."""
    rows = {i: (t, m) for i, t, m in zip(ids, texts, metadatas)}
    index = KeywordIndex(mode)
    index.update(list(ids), lambda new: ((i, *rows[i]) for i in new))
    return index
