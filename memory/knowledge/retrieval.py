"""Hybrid retrieval: dense (Chroma) and BM25 rankings fused with reciprocal rank fusion, then an
optional cross-encoder reranker.

RRF uses ranks only, so the cosine and BM25 scales never have to be calibrated against each
other: score(d) = sum over rankings of 1 / (k + rank). Dense recall carries cross-lingual and
paraphrased questions; BM25 carries exact terms (model names, acronyms, numbers).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


class Hit(BaseModel):
    text: str
    source: str
    heading: str
    chunk_id: str
    score: float
    collection: str = ""
    position: int = 0

    def public(self) -> dict[str, Any]:
        """The tool's shape: {"text", "source", "heading", "chunk_id", "score"}."""
        return {"text": self.text, "source": self.source, "heading": self.heading, "chunk_id": self.chunk_id,
                "score": round(self.score, 4)}


def rrf(rankings: Sequence[Sequence[str]], k: int = 60) -> list[tuple[str, float]]:
    """Fuse ranked id lists; ties keep the order of first appearance (dense first)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def where_filter(collection: str | None = None, source: str | None = None, owners: list[str] | None = None) -> dict[str, Any]:
    """Metadata filters as a plain dict (BM25 mask); `chroma_where` turns it into Chroma's.
    A list value means "one of" (`owners`: "" is the shared knowledge base, a user id that user's own)."""
    where: dict[str, Any] = {}
    if collection:
        where["collection"] = collection
    if source:
        where["source"] = source
    if owners is not None:
        where["owner"] = list(owners)
    return where


def chroma_where(where: dict[str, Any]) -> dict[str, Any] | None:
    if not where:
        return None
    parts = [{k: {"$in": v} if isinstance(v, list) else v} for k, v in where.items()]
    return parts[0] if len(parts) == 1 else {"$and": parts}


class Reranker:
    """A sentence-transformers CrossEncoder, loaded on first use (optional dependency)."""

    def __init__(self, model: str, device: str | None = None) -> None:
        self.model_name = model
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import CrossEncoder
                except ImportError:
                    raise RuntimeError("the reranker needs the sentence-transformers package (pip install sentence-transformers)") from None
                self._model = CrossEncoder(self.model_name, device=self.device)
            return self._model

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return hits
        scores = self._load().predict([(query, h.text) for h in hits], show_progress_bar=False)
        ranked = sorted(zip(hits, scores), key=lambda pair: float(pair[1]), reverse=True)
        return [h.model_copy(update={"score": float(s)}) for h, s in ranked]
