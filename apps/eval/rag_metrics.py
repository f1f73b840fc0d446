"""RAG generation metrics of one eval run, from its result records alone (docs/eval.md).

Per task that retrieved (or should have):

- context precision: rank-weighted share of the retrieved passages that come from an expected
  source file (mean of precision@i over the relevant ranks, as RAGAS defines it);
- context recall: the share of the reference answer's terms found in the retrieved passages
  (without a reference: whether an expected source was retrieved at all);
- faithfulness: the share of the answer's claims supported by the passages (agent/grounding.py's
  overlap check: works with any model);
- answer relevance: the share of the question's topic terms (with their glossary translation)
  that the answer addresses;
- answer correctness: the task's own check (rule based: regex, contains ...) as 1 or 0, and, when
  a judge model is configured (`mmagent eval --judge SPEC`), its 1-5 judgement against the
  reference;
- negative rejection (RGB): of the tasks whose answer is not in the documents
  (`"answerable": false`), how many answers say it was not found.

Noise robustness is the same metrics on the `rag-noise` suite, whose knowledge base also holds
distractor notes (apps/eval/noise/).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.grounding import (
    answer_body,
    chinese,
    claims,
    overlap_faithfulness,
    plain_text,
    says_not_found,
    sentence_support,
)
from memory.knowledge.keyword import bigram_tokens
from memory.knowledge.rewrite import glossary_translation

_REQUEST = re.compile(r"\b(?:according|to|my|notes?|documents?|knowledge|base|say|says|in)\b|根据|我的|笔记|文档|资料|里|中", re.IGNORECASE)


class RagScores(BaseModel):
    tasks: int = 0
    context_precision: float | None = None
    context_recall: float | None = None
    faithfulness: float | None = None
    answer_relevance: float | None = None
    correctness: float | None = None  # rule checks, 0..1
    judged: float | None = None  # the judge model's mean 1-5 score
    unanswerable: int = 0
    rejected: int = 0

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.unanswerable if self.unanswerable else None

    def cell(self) -> str:
        parts = []
        for label, value in (("CP", self.context_precision), ("CR", self.context_recall), ("F", self.faithfulness),
                             ("AR", self.answer_relevance), ("AC", self.correctness)):
            if value is not None:
                parts.append(f"{label} {value:.2f}")
        if self.judged is not None:
            parts.append(f"judge {self.judged:.1f}/5")
        if self.unanswerable:
            parts.append(f"NR {self.rejected}/{self.unanswerable}")
        return " ".join(parts)


def retrieved_passages(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from apps.eval.scoring import retrieved

    return [p for call in retrieved(steps) for p in call]


def _from_sources(passage: dict[str, Any], sources: list[str]) -> bool:
    name = Path(str(passage.get("source", ""))).name
    return any(name.startswith(s) for s in sources)


def context_precision(passages: list[dict[str, Any]], sources: list[str]) -> float | None:
    if not sources or not passages:
        return None if not sources else 0.0
    hits, total = 0, 0.0
    for rank, passage in enumerate(passages, 1):
        if _from_sources(passage, sources):
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def _terms(text: str) -> set[str]:
    return set(bigram_tokens(text))


def context_recall(passages: list[dict[str, Any]], reference: str | None, sources: list[str]) -> float | None:
    if reference:
        if not _terms(reference):
            return None
        # An English reference about Chinese passages is read through the glossary too.
        return sentence_support(reference, _terms(" ".join(plain_text(p) for p in passages)))
    if sources:
        return float(any(_from_sources(p, sources) for p in passages))
    return None


def answer_relevance(question: str, answer: str) -> float | None:
    topic = _REQUEST.sub(" ", question)
    wanted = _terms(topic) | (set() if chinese(topic) else _terms(glossary_translation(topic)))
    if not wanted or not answer.strip():
        return None if not wanted else 0.0
    said = _terms(answer_body(answer))
    # A question's terms come in both languages; an answer uses one, so half of them is full marks.
    return min(1.0, 2 * len(wanted & said) / len(wanted))


def record_scores(record: dict[str, Any]) -> dict[str, Any]:
    """The metrics of one result record (None where one does not apply)."""
    expect = (record.get("metadata") or {}).get("eval", {})
    answer = str(record.get("answer") or "")
    passages = retrieved_passages(record.get("steps") or [])
    sources = list(expect.get("sources") or [])
    answerable = expect.get("answerable", True)
    out: dict[str, Any] = {"answerable": answerable, "rejected": says_not_found(answer)}
    if answerable:
        out["context_precision"] = context_precision(passages, sources)
        out["context_recall"] = context_recall(passages, expect.get("reference"), sources)
        out["faithfulness"] = overlap_faithfulness(answer, [f"{p.get('heading', '')} {plain_text(p)}" for p in passages]) if claims(answer) else None
        out["answer_relevance"] = answer_relevance(str(record.get("input", "")), answer)
        if record.get("passed") is not None:
            out["correctness"] = float(bool(record["passed"]))
    return out


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return round(sum(real) / len(real), 3) if real else None


def rag_scores(records: list[dict[str, Any]]) -> RagScores | None:
    """The suite's RAG metrics, or None when no task asks for them (`"rag": true` in its eval
    metadata, set by suites with "rag" in `needs`)."""
    chosen = [r for r in records if ((r.get("metadata") or {}).get("eval") or {}).get("rag")]
    if not chosen:
        return None
    per = [record_scores(r) for r in chosen]
    scores = RagScores(tasks=len(chosen))
    for key in ("context_precision", "context_recall", "faithfulness", "answer_relevance", "correctness"):
        setattr(scores, key, _mean([p.get(key) for p in per if p["answerable"]]))
    scores.unanswerable = sum(not p["answerable"] for p in per)
    scores.rejected = sum(p["rejected"] for p in per if not p["answerable"])
    judged = [((r.get("metadata") or {}).get("eval") or {}).get("judged") for r in chosen]
    scores.judged = _mean([j for j in judged if isinstance(j, (int, float))])
    return scores


# ---------------------------------------------------------------- the judge (optional)


def judge_prompt(question: str, reference: str, answer: str) -> str:
    return (
        "Grade the answer against the reference answer from 1 (wrong or unsupported) to 5 (correct and complete).\n\n"
        f"Question: {question}\nReference: {reference}\nAnswer: {answer}\n\nReply with one digit.\nGrade:"
    )


def parse_grade(reply: str) -> int | None:
    match = re.search(r"[1-5]", reply or "")
    return int(match.group(0)) if match else None


def judge_records(records: list[dict[str, Any]], complete: Any) -> int:
    """Ask the judge (`complete(prompt) -> text`) to grade every answerable RAG record with a
    reference; the grade goes into the record's eval metadata. Returns how many were graded."""
    graded = 0
    for record in records:
        expect = ((record.get("metadata") or {}).get("eval")) or {}
        if not expect.get("rag") or not expect.get("answerable", True) or not expect.get("reference"):
            continue
        grade = parse_grade(complete(judge_prompt(str(record.get("input", "")), expect["reference"], str(record.get("answer") or ""))))
        if grade is not None:
            expect["judged"] = grade
            graded += 1
    return graded
