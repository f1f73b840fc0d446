"""Long-term memory latency at 10k notes: one write (embed + upsert) and one search (embed +
similarity search over one user's notes), p50/p95, through `LongTermMemory` on a persistent
Chroma store. The search is exact up to `EXACT_LIMIT` notes per user, else the filtered HNSW
query (`memory/store.py nearest`); `--notes 3000` times the exact search at that limit.

The store is first filled with N notes spread over 10 users in batches (not timed); then each
operation is timed one at a time, as the agent does it. Run: .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory.long_term import LongTermMemory  # noqa: E402
from memory.store import EXACT_LIMIT, open_collections  # noqa: E402
from multimodal.text_embeddings import SentenceEncoder  # noqa: E402

SUBJECTS = ["percentages", "a cat picture", "unit conversion", "a PDF summary", "网页搜索", "翻译成中文", "image captions", "dates"]
LESSONS = ["use the calculator", "ask which style first", "cite the page number", "check the units", "先搜索再回答", "do not guess"]


def fake_note(i: int) -> tuple[str, str]:
    subject = SUBJECTS[i % len(SUBJECTS)]
    return f"Task {i}: a question about {subject} number {i * 7919 % 10007}", f"Note {i}: {random.choice(LESSONS)} for {subject}."


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def main(n: int, ops: int) -> None:
    random.seed(0)
    encoder = SentenceEncoder()
    t0 = time.perf_counter()
    encoder.load()
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        memory = LongTermMemory(open_collections(Path(folder)), encoder)
        t0 = time.perf_counter()
        batch = 500
        for start in range(0, n, batch):
            items = [fake_note(i) for i in range(start, min(n, start + batch))]
            vectors = encoder.encode([task for task, _ in items]).tolist()
            memory.collections["note"].add(
                ids=[f"n{start + j}" for j in range(len(items))],
                embeddings=vectors,
                documents=[text for _, text in items],
                metadatas=[{"user_id": f"user{(start + j) % 10}", "task": task, "task_type": "", "outcome": "failed",
                            "answer": "", "created_at": time.time()} for j, (task, _) in enumerate(items)],
            )
        fill_s = time.perf_counter() - t0
        writes, searches, embeds = [], [], []
        for i in range(ops):
            task, text = fake_note(n + i)
            t0 = time.perf_counter()
            await memory.add_note("user3", task=task, reflection=text, outcome="failed")
            writes.append((time.perf_counter() - t0) * 1000)
        for i in range(ops):
            query = f"How do I handle {random.choice(SUBJECTS)} question {i}?"
            t0 = time.perf_counter()
            encoder.encode([query + " (embed only)"])
            embeds.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            found = await memory.relevant_notes("user3", query, 3, 0.45)
            searches.append((time.perf_counter() - t0) * 1000)
            assert all(f.kind == "note" for f in found)
        total = await memory.count("note")
        searched = len(await memory.list("note", "user3"))
    how = "exact" if searched <= EXACT_LIMIT else "HNSW index"
    print(f"notes in store: {total:,} (10 users; searches filter to one user's {searched:,}: {how})")
    print(f"encoder load {load_s:.1f} s; bulk fill {n:,} notes {fill_s:.1f} s")
    print(f"{'operation':<34}{'p50 ms':>9}{'p95 ms':>9}")
    print(f"{'write (embed + upsert)':<34}{statistics.median(writes):>9.1f}{pct(writes, 95):>9.1f}")
    print(f"{'search (embed + nearest of user)':<34}{statistics.median(searches):>9.1f}{pct(searches, 95):>9.1f}")
    print(f"{'  of which: embed one query':<34}{statistics.median(embeds):>9.1f}{pct(embeds, 95):>9.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.notes, args.ops))
