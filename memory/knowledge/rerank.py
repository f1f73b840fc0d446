"""Wide then narrow: the fused candidates (top `rerank_candidates`) reordered, the top k returned.

`LexicalReranker` (the default, offline, nothing to download) scores each candidate by

- term coverage: the IDF-weighted share of the query's terms (and of its glossary translation)
  found in the chunk with its heading path, and separately in the heading alone. A FAQ-style
  note answers a question under a heading that restates it, so heading coverage is strong;
- dense similarity: the cosine between the query vector and the chunk vector (both already
  made: the chunk vectors come back from Chroma with the candidates);
- the fusion rank, as a prior (weight 0 by default: on the bench it only cost R@1).

Weights were set on bench/rag.py's question set (docs/knowledge.md has the on/off figures).
`CrossEncoderReranker` (multimodal/embeddings.py) replaces it for users with a network: one
config line, `knowledge.reranker = "BAAI/bge-reranker-base"`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from memory.knowledge.retrieval import Hit

W_COVERAGE = 1.0
W_HEADING = 1.0
W_DENSE = 0.8
W_PRIOR = 0.0


class LexicalReranker:
    name = "lexical"

    def __init__(self, index: Any) -> None:
        """`index`: the KeywordIndex (its tokenizer, IDF, and each chunk's stored token ids, so
        candidates are not tokenized again per query)."""
        self.index = index

    def _weights(self, texts: Sequence[str]) -> dict[str, float]:
        terms: dict[str, float] = {}
        for text in texts:
            for tok in self.index.tokens(text):
                terms[tok] = max(terms.get(tok, 0.0), self.index.idf(tok))
        return terms

    def _body(self, hit: Hit) -> set[str] | np.ndarray:
        ids = self.index.token_ids(hit.chunk_id)
        return set(self.index.tokens(f"{hit.heading}\n{hit.text}")) if ids is None else ids

    def scores(self, queries: Sequence[str], hits: Sequence[Hit], query_vector: np.ndarray | None = None,
               vectors: dict[str, np.ndarray] | None = None) -> list[float]:
        """One score per hit, higher is better; `queries`: the original first, then its
        keyword rewrites (translation); `vectors`: chunk vectors by id, where known."""
        weights = {t: w for t, w in self._weights(queries).items() if w > 0}
        total = sum(weights.values()) or 1.0
        terms = list(weights)
        term_ids = np.asarray([self.index.vocab[t] for t in terms], dtype=np.int64)
        term_w = np.asarray([weights[t] for t in terms], dtype=np.float64)
        out = []
        for rank, hit in enumerate(hits):
            body = self._body(hit)
            if isinstance(body, set):
                coverage = sum(w for t, w in weights.items() if t in body) / total
            else:
                coverage = float(term_w[np.isin(term_ids, body)].sum()) / total if len(term_ids) else 0.0
            head = set(self.index.tokens(hit.heading))
            heading = sum(w for t, w in weights.items() if t in head) / total
            dense = 0.0
            if query_vector is not None and vectors and hit.chunk_id in vectors:
                dense = float(np.dot(query_vector, vectors[hit.chunk_id]))
            prior = 1.0 / math.sqrt(rank + 1)
            out.append(W_COVERAGE * coverage + W_HEADING * heading + W_DENSE * dense + W_PRIOR * prior)
        return out


def reorder(hits: list[Hit], scores: Sequence[float]) -> list[Hit]:
    ranked = sorted(zip(hits, scores), key=lambda pair: pair[1], reverse=True)
    return [h.model_copy(update={"score": float(s)}) for h, s in ranked]


def make_reranker(spec: str | None, device: str | None = None) -> Any:
    """None (off), "lexical" (built by the knowledge base, which owns the tokenizer and IDF),
    or a cross-encoder for any other name."""
    if not spec or spec.lower() in ("none", "off"):
        return None
    if spec == "lexical":
        return "lexical"
    from memory.knowledge.retrieval import Reranker

    return Reranker(spec, device)
