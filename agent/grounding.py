"""Grounded answers: citations that point at returned chunks, a faithfulness check, and saying
"not in the documents" instead of making an answer up.

Runs after respond has the answer text (nodes.respond calls `ground`), for every model:

1. Negative rejection: when every retrieval of the turn came back as "no passage answers
   this" (the knowledge base's evidence check, memory/knowledge/evidence.py), the answer is
   that the documents do not contain it, whatever the model wrote.
2. Citations: `[n]` is the n-th passage the turn retrieved (all retrieve/search calls in
   order). Each `[n]` that maps to one becomes a `Citation` (source, heading, chunk id): shown
   under the answer and returned by the API; an `[n]` beyond what was returned is removed.
3. Faithfulness: the share of the answer's sentences whose terms are found in the passages
   (an overlap check that works for the bundled model); a capable model can be asked instead
   (`judge_prompt` / `parse_judgement`). An unsupported answer says so.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from memory.knowledge.keyword import bigram_tokens
from tools.retrieve import NO_ANSWER_MARK

NOT_FOUND_EN = "I did not find this in the documents."
NOT_FOUND_ZH = "我在文档中没有找到这方面的内容。"
UNSUPPORTED_EN = "Note: the retrieved passages do not clearly support this answer."
UNSUPPORTED_ZH = "注意：检索到的段落并不能明确支持这个回答。"
SUPPORTED = 0.5  # share of supported sentences for an answer to count as faithful
SENTENCE_SUPPORT = 0.5  # share of a sentence's terms found in the passages
RETRIEVAL_TOOLS = ("retrieve", "search")
_CJK = re.compile(r"[\u3400-\u9fff]")
_CITE = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]")
_QUOTE_MARKERS = re.compile(r"<<(?:quoted|end)[^>]*>>", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[。！？!?；;])\s*|(?<=\.)\s+|\n+")


class Citation(BaseModel):
    n: int
    source: str
    heading: str = ""
    chunk_id: str = ""


class Grounding(BaseModel):
    answer: str
    citations: list[Citation] = []
    faithfulness: float | None = None  # None: no passages to check against
    supported: bool = True
    rejected: bool = False  # the documents do not contain the answer


def chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def not_found(request: str) -> str:
    return NOT_FOUND_ZH if chinese(request) else NOT_FOUND_EN


def says_not_found(answer: str) -> bool:
    low = answer.lower()
    return NOT_FOUND_EN.lower()[:-1] in low or "没有找到" in answer or "not in the documents" in low or "did not find" in low


# ---------------------------------------------------------------- what the turn retrieved


def retrieval_results(step_log: list[dict[str, Any]]) -> list[Any]:
    """The results of the turn's successful retrieve/search calls (a search's local part)."""
    out = []
    for entry in step_log:
        if entry.get("tool") in RETRIEVAL_TOOLS and entry.get("ok"):
            result = entry.get("result")
            out.append(result.get("local") if isinstance(result, dict) else result)
    return out


def passages(step_log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every passage the turn retrieved, in order: [n] is passages[n - 1]."""
    return [p for r in retrieval_results(step_log) if isinstance(r, list) for p in r if isinstance(p, dict) and isinstance(p.get("text"), str)]


def nothing_found(step_log: list[dict[str, Any]]) -> bool:
    """The turn searched the documents, every search said that nothing answers, and no web
    result came back either."""
    results = retrieval_results(step_log)
    web = any(isinstance(e.get("result"), dict) and isinstance(e["result"].get("web"), list) and e["result"]["web"]
              for e in step_log if e.get("tool") == "search" and e.get("ok"))
    return bool(results) and not web and all(isinstance(r, str) and r.startswith(NO_ANSWER_MARK) for r in results)


def plain_text(passage: dict[str, Any]) -> str:
    lines = [ln for ln in str(passage.get("text", "")).splitlines() if not _QUOTE_MARKERS.search(ln)]
    return " ".join(" ".join(lines).split())


# ---------------------------------------------------------------- citations


def citations(answer: str, hits: list[dict[str, Any]]) -> tuple[str, list[Citation]]:
    """The answer with every `[n]` that names no returned passage removed, and the passages it
    cites (first mention order)."""
    cited: dict[int, Citation] = {}

    def keep(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.split(r"\s*[,，、]\s*", match.group(1))]
        good = [n for n in numbers if 1 <= n <= len(hits)]
        for n in good:
            hit = hits[n - 1]
            cited.setdefault(n, Citation(n=n, source=str(hit.get("source", "")), heading=str(hit.get("heading", "")),
                                         chunk_id=str(hit.get("chunk_id", ""))))
        return "[" + ", ".join(map(str, good)) + "]" if good else ""

    cleaned = _CITE.sub(keep, answer)
    cleaned = re.sub(r"[ \t]+([,.;:，。；：])", r"\1", cleaned)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip(), list(cited.values())


# ---------------------------------------------------------------- faithfulness


def _terms(text: str) -> set[str]:
    return set(bigram_tokens(text))


_SOURCES = re.compile(r"\n\s*(?:Sources:|来源：|\*\*Sources\*\*)\s*\n")


def answer_body(answer: str) -> str:
    """The answer without its sources list (source lines are references, not claims)."""
    return _SOURCES.split(answer, 1)[0]


def claims(answer: str) -> list[str]:
    """The sentences of an answer that state something (citation marks, the sources list and
    lines that introduce a list are not claims)."""
    out = []
    for sentence in _SENTENCE.split(_CITE.sub(" ", answer_body(answer))):
        sentence = sentence.strip(" -*")
        if len(_terms(sentence)) >= 2 and not sentence.endswith(("：", ":")):
            out.append(sentence)
    return out


def overlap_faithfulness(answer: str, contexts: list[str]) -> float | None:
    """Share of the answer's claims whose terms (words, Chinese bigrams) are mostly found in
    the contexts; None when there is nothing to check."""
    sentences = claims(answer)
    if not sentences or not contexts:
        return None
    context = _terms(" ".join(contexts))
    supported = 0
    for sentence in sentences:
        supported += sentence_support(sentence, context) >= SENTENCE_SUPPORT
    return supported / len(sentences)


def sentence_support(sentence: str, context: set[str]) -> float:
    """Share of the sentence's terms in the context; an English sentence about Chinese passages
    is also read through the glossary (its terms' Chinese renderings)."""
    from memory.knowledge.rewrite import glossary_translation

    terms = _terms(sentence)
    direct = len(terms & context) / len(terms) if terms else 0.0
    if chinese(sentence):
        return direct
    translated = _terms(glossary_translation(sentence))
    latin = {t for t in terms if not chinese(t)}
    # The sentence's own English names (PPO, LoRA) still count where the passage has them.
    names = {t for t in latin if t in context}
    via = (len(translated & context) + len(names)) / (len(translated) + len(names)) if translated else 0.0
    return max(direct, via)


def judge_prompt(question: str, answer: str, contexts: list[str]) -> str:
    """A yes/no faithfulness question for a capable model (one line answer)."""
    context = "\n\n".join(f"[{i}] {c[:1500]}" for i, c in enumerate(contexts, 1))
    return (
        "Decide whether the answer is supported by the context: every claim it makes must be stated in the context.\n\n"
        f"Context:\n{context}\n\nQuestion: {question}\nAnswer: {answer}\n\n"
        "Reply with one word, yes or no.\nSupported:"
    )


def parse_judgement(reply: str) -> bool | None:
    word = reply.strip().lower()[:12]
    if word.startswith(("yes", "是", "支持")):
        return True
    if word.startswith(("no", "否", "不")):
        return False
    return None


# ---------------------------------------------------------------- the whole check


def ground(request: str, answer: str, step_log: list[dict[str, Any]], *, judged: bool | None = None) -> Grounding:
    """`answer` as the user gets it: not-found when the documents lack the answer, citations
    mapped (and stray ones removed), a note when the passages do not support it. `judged`: a
    capable model's faithfulness verdict, when one was asked."""
    if nothing_found(step_log) and not passages(step_log):
        return Grounding(answer=not_found(request), rejected=True, supported=True)
    hits = passages(step_log)
    if not hits:
        return Grounding(answer=answer)
    cleaned, cited = citations(answer, hits)
    if says_not_found(cleaned):
        return Grounding(answer=cleaned, citations=cited, rejected=True)
    contexts = [f"{h.get('heading', '')} {plain_text(h)}" for h in hits]
    score = overlap_faithfulness(cleaned, contexts)
    supported = judged if judged is not None else (score is None or score >= SUPPORTED)
    if score == 0.0 and judged is not True:
        # Nothing the answer says is in the passages: an answer made up around them. Say what
        # is true instead: the documents do not contain it.
        return Grounding(answer=not_found(request), citations=[], faithfulness=0.0, supported=False, rejected=True)
    if not supported:
        cleaned = f"{cleaned}\n\n{UNSUPPORTED_ZH if chinese(request) else UNSUPPORTED_EN}"
    return Grounding(answer=cleaned, citations=cited, faithfulness=score, supported=supported)


def sources_block(cited: list[Citation], answer: str, request: str) -> str:
    """"Sources:" lines for the citations whose source the answer does not already show."""
    lines = [f"[{c.n}] {c.source}" + (f" > {c.heading}" if c.heading else "") for c in cited if c.source and c.source not in answer]
    if not lines:
        return ""
    return ("来源：" if chinese(request) else "Sources:") + "\n" + "\n".join(lines)


async def grounded_answer(ctx: Any, state: dict[str, Any], answer: str) -> Grounding:
    """`ground` for a graph turn; with `knowledge.faithfulness = "model"` a capable model (not a
    completion-style one) judges the answer against the passages first."""
    from agent.llm.base import ChatRequest, LLMError

    request, step_log = state["request"], state.get("step_log", [])
    hits = passages(step_log)
    judged = None
    config = getattr(ctx.settings, "knowledge", None)
    if hits and getattr(config, "faithfulness", "overlap") == "model" and not ctx.backend.completion_style:
        contexts = [plain_text(h) for h in hits]
        try:
            reply = await ctx.backend.complete(ChatRequest(
                messages=[{"role": "user", "content": judge_prompt(request, answer, contexts)}], tool_choice="none",
                temperature=0.0, max_tokens=4, purpose="respond"), session=ctx.session)
            judged = parse_judgement(reply.content)
        except LLMError:
            judged = None  # the overlap check decides
    result = ground(request, answer, step_log, judged=judged)
    if result.citations and not ctx.backend.completion_style:
        block = sources_block(result.citations, result.answer, request)
        if block:
            result.answer = f"{result.answer}\n\n{block}"
    return result
