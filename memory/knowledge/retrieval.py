"""Hybrid retrieval: dense (Chroma) and BM25 rankings fused with reciprocal rank fusion, then an
optional cross-encoder reranker.

RRF uses ranks only, so the cosine and BM25 scales never have to be calibrated against each
other: score(d) = sum over rankings of 1 / (k + rank). Dense recall carries cross-lingual and
paraphrased questions; BM25 carries exact terms (model names, acronyms, numbers).
"""

from __future__ import annotations

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


def rrf(rankings: Sequence[Sequence[str]], k: int = 60, weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Fuse ranked id lists (each with its weight, default 1); ties keep the order of first
    appearance (dense first)."""
    scores: dict[str, float] = {}
    for n, ranking in enumerate(rankings):
        weight = weights[n] if weights is not None else 1.0
        for rank, chunk_id in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
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
    """Reorders fused hits with a cross-encoder (optional; the model lives in multimodal/)."""

    def __init__(self, model: str, device: str | None = None) -> None:
        from multimodal.embeddings import CrossEncoderReranker

        self.model = CrossEncoderReranker(model, device)

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return hits
        scores = self.model.scores(query, [h.text for h in hits])
        ranked = sorted(zip(hits, scores), key=lambda pair: pair[1], reverse=True)
        return [h.model_copy(update={"score": s}) for h, s in ranked]
