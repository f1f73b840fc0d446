"""The agent's safety layer: moderation of each request and answer, prompt-injection checks, and
keeping the system prompt out of answers (docs/safety.md).

- `guard_input` (a graph node, before recall and planning): the request goes through the
  moderation classifier, whose `injection` category covers direct prompt injection, jailbreaks
  and requests for the system prompt, in English and Chinese. A flagged request is answered by
  `respond` with a refusal naming the category; no model sees it.
- `guard_output` (called by `respond` on the final answer): system-prompt text is cut out of
  the answer, then the answer is moderated; a flagged answer is withheld with a note.

The classifier is offline (multimodal/moderation.py); a configured OpenAI-compatible
`/v1/moderations` endpoint is asked as well, and either one flagging is enough.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent import prompts
from agent.config import Safety
from memory.pii import mask_pii
from multimodal.moderation import (
    CATEGORIES,
    ExampleClassifier,
    ModerationEndpointError,
    Verdict,
    ask_endpoint,
)

log = logging.getLogger(__name__)

LABELS = {
    "violence": "violence against people", "weapons": "weapons or explosives", "self_harm": "self-harm",
    "sexual_minors": "sexual content involving minors", "hate": "hate speech", "harassment": "harassment or threats",
    "drugs": "making or trafficking drugs", "malware": "hacking or malware", "fraud": "fraud or scams",
    "injection": "an attempt to override my instructions or reveal them",
}


#: Verdicts remembered, and the longest text whose verdict is (longer ones rarely repeat).
VERDICTS_KEPT = 1024
VERDICT_TEXT_LIMIT = 2000


def _copy(verdict: Verdict) -> Verdict:
    """A copy the caller may change without changing the remembered verdict."""
    return Verdict(verdict.flagged, dict(verdict.categories), dict(verdict.scores), list(verdict.reasons))


class SafetyGuard:
    """One per app: the offline classifier (sharing the app's sentence encoder) and the
    optional endpoint, with the thresholds from `[safety]`."""

    def __init__(self, settings: Safety, encoder: Any, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.classifier = ExampleClassifier(encoder, cache_dir=cache_dir)
        # Verdicts by text: a verdict depends on the text alone, and many answers repeat
        # ("Done.", a refusal), each costing ~1 ms of regexes and similarities in the server.
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()
        self._verdicts_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.moderation

    def classify_offline(self, text: str) -> Verdict:
        with self._verdicts_lock:
            known = self._verdicts.get(text)
            if known is not None:
                self._verdicts.move_to_end(text)
                return _copy(known)
        s = self.settings
        # Masked first: "[phone]" reads the same whoever's number it was, and the examples
        # (a user giving their own details) are written that way.
        verdict = self.classifier.classify(
            mask_pii(text), categories=s.categories, threshold=s.threshold, margin=s.margin, thresholds=s.thresholds, top_k=s.top_k, boost=s.lexical_boost,
        )
        if len(text) <= VERDICT_TEXT_LIMIT:
            with self._verdicts_lock:
                self._verdicts[text] = verdict
                while len(self._verdicts) > VERDICTS_KEPT:
                    self._verdicts.popitem(last=False)
        return _copy(verdict)

    async def check_many(self, texts: list[str]) -> list[Verdict]:
        """Verdicts for `texts`: offline (in a worker thread, the encoder is CPU work), then the
        endpoint when one is configured. An endpoint failure is logged; the offline verdict stands."""
        verdicts = [await asyncio.to_thread(self.classify_offline, t) for t in texts]
        url = self.settings.moderation_url
        if url and texts:
            key = self.settings.moderation_api_key
            try:
                remote = await ask_endpoint(
                    url, texts, model=self.settings.moderation_model, api_key=key.get_secret_value() if key else None,
                    timeout_s=self.settings.moderation_timeout_s,
                )
                verdicts = [merge(local, other) for local, other in zip(verdicts, remote)]
            except ModerationEndpointError as exc:
                log.warning("%s; using the offline verdict", exc)
        return verdicts

    async def check(self, text: str) -> Verdict:
        return (await self.check_many([text]))[0]


def merge(local: Verdict, remote: Verdict) -> Verdict:
    categories = dict(local.categories)
    scores = dict(local.scores)
    for name, on in remote.categories.items():
        categories[name] = categories.get(name, False) or on
    for name, value in remote.scores.items():
        scores[name] = max(scores.get(name, 0.0), value)
    return Verdict(flagged=local.flagged or remote.flagged, categories=categories, scores=scores, reasons=[*local.reasons, *remote.reasons])


def describe(verdict: Verdict) -> str:
    top = verdict.top
    return LABELS.get(top, top.replace("_", " ")) if top else "content this assistant does not produce"


# ------------------------------------------------------------------ the answer


async def guard_output(ctx: Any, answer: str) -> str:
    """The answer as it may reach the user: without system-prompt text, and withheld with a note
    when moderation flags it."""
    answer = strip_system_prompt(answer)
    guard: SafetyGuard | None = getattr(ctx, "safety", None)
    if guard is None or not guard.enabled or not answer.strip() or answer == prompts.PROMPT_WITHHELD:
        return answer
    try:
        verdict = await guard.check(answer)
    except Exception as exc:  # noqa: BLE001 - fail closed, as for requests
        log.warning("the safety check of the answer failed: %s", exc)
        return prompts.WITHHELD_UNCHECKED
    verdict = answer_verdict(verdict)
    if not verdict.flagged:
        return answer
    log.info("answer withheld: %s", ", ".join(verdict.reasons))
    return prompts.WITHHELD.format(reason=describe(verdict))


def answer_verdict(verdict: Verdict) -> Verdict:
    """The verdict on an answer, without "injection": that is an attack on our instructions by
    a request; in an answer it was only ever the notes' own text about prompts (a RAG answer
    quoting an API example with a system message was withheld as one). A leak of our prompts
    is caught by `strip_system_prompt` instead."""
    categories = {**verdict.categories, "injection": False}
    return replace(verdict, flagged=any(categories.values()), categories=categories,
                   reasons=[r for r in verdict.reasons if not r.startswith("injection")])


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


# Sentences of every system prompt; an answer that quotes one of them is leaking the prompt.
_MIN_LEAK_CHARS = 40


def _prompt_sentences() -> list[str]:
    texts: list[str] = []
    for value in vars(prompts).values():
        if isinstance(value, prompts.PromptTemplate):
            texts += [value.role, value.instruction, value.output_format]
    texts += list(prompts.SYSTEM_TEXTS)
    sentences: set[str] = set()
    for text in texts:
        for sentence in re.split(r"(?<=[.!?:])\s+|\n+", text):
            sentence = _normal(sentence)
            if len(sentence) >= _MIN_LEAK_CHARS and "{" not in sentence:
                sentences.add(sentence)
    return sorted(sentences, key=len, reverse=True)


_SENTENCES = _prompt_sentences()  # module-level: read-only, built from constant prompt texts


_HEADINGS = re.compile(r"^\s*#\s*(Role|Instruction|Output format)\s*$", re.MULTILINE | re.IGNORECASE)


def strip_system_prompt(answer: str) -> str:
    """`answer` without our system prompts: one quoted sentence is cut out; an answer quoting
    more (two sentences, or the prompts' section headings) is replaced by a note."""
    if not answer or len(answer) < _MIN_LEAK_CHARS:
        return answer
    lowered = _normal(answer)
    leaked = [s for s in _SENTENCES if s in lowered]
    if not leaked and not _HEADINGS.search(answer):
        return answer
    if len(leaked) >= 2 or _HEADINGS.search(answer):
        log.info("answer withheld: it quoted the system prompt")
        return prompts.PROMPT_WITHHELD
    pattern = re.compile(re.escape(leaked[0]).replace(r"\ ", r"\s+"), re.IGNORECASE)
    return pattern.sub(prompts.PROMPT_REMOVED, answer)


__all__ = ["CATEGORIES", "SafetyGuard", "guard_output", "strip_system_prompt"]
