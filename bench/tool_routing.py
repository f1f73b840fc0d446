"""Tool-retrieval benchmark: which tool does the router pick for simple requests, in English and Chinese?

Run: .venv/bin/python bench/tool_routing.py

Compares nearest-example routing (max cosine over a tool's description and examples), centroid
routing (ToolRouter's default), description-only similarity (no examples) and the default with
English-only examples (Chinese requests are then cross-lingual); then how to mix in the plan step;
then the router threshold. Tools and requests: tests/routing_cases.py.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # routing_cases lives with the tests

from routing_cases import BENCH_REQUESTS, CONTEXT_REQUESTS, NO_TOOL, TEST_REQUESTS, make_registry  # noqa: E402

from agent.tool_router import ToolRouter  # noqa: E402
from multimodal.text_embeddings import SentenceEncoder  # noqa: E402


def accuracy_table(title: str, router: ToolRouter) -> None:
    print(f"\n== {title}")
    right = {"en": 0, "zh": 0}
    for expected, english, chinese in BENCH_REQUESTS:
        for lang, request in (("en", english), ("zh", chinese)):
            top = router.rank(request, k=1)[0]
            ok = top.name == expected
            right[lang] += ok
            mark = "ok " if ok else f"WRONG (want {expected})"
            print(f"  {lang} {top.name:15s} {top.score:5.3f} {mark:28s} {request}")
    n = len(BENCH_REQUESTS)
    print(f"  accuracy: en {right['en']}/{n}  zh {right['zh']}/{n}  all {right['en'] + right['zh']}/{2 * n}")


def held_out_accuracy(router: ToolRouter) -> str:
    right = sum(router.rank(q, k=1)[0].name == e for e, q in TEST_REQUESTS)
    return f"{right}/{len(TEST_REQUESTS)}"


def model_offer(router: ToolRouter) -> str:
    """Policy "model", top_k=3, on all 40 requests: is the right tool offered, and how many tools?"""
    labelled = [(e, q) for e, en, zh in BENCH_REQUESTS for q in (en, zh)] + TEST_REQUESTS
    offers = [(e, [t.name for t in router.select(q, policy="model", top_k=3)]) for e, q in labelled]
    hit = sum(e in names for e, names in offers)
    return f"{hit}/{len(offers)}, {statistics.mean(len(n) for _, n in offers):.1f} tools"


def timing(router: ToolRouter, encoder: SentenceEncoder, repeats: int = 5) -> str:
    """Best of `repeats` per request, so that a busy machine does not swamp the figure."""
    encoder.cache_clear()
    fresh = ToolRouter(router.registry, encoder, scoring=router.scoring)
    start = time.perf_counter()
    fresh.rank("warm up")  # the one-off index build: embeds every tool text
    build = time.perf_counter() - start
    best = []
    for request in (q for _, en, zh in BENCH_REQUESTS for q in (en, zh)):
        runs = []
        for _ in range(repeats):
            encoder.cache_clear()  # embed the request afresh, as for a new request
            start = time.perf_counter()
            fresh.rank(request)
            runs.append(time.perf_counter() - start)
        best.append(min(runs))
    start = time.perf_counter()
    fresh.rank(BENCH_REQUESTS[-1][2])  # embedded by the last run above: served from the cache
    cached = time.perf_counter() - start
    return (
        f"index build {build * 1000:.0f} ms; rank() median {statistics.median(best) * 1000:.1f} ms, "
        f"max {max(best) * 1000:.1f} ms (new request); {cached * 1000:.2f} ms (cached request)"
    )


def context_mixes(router: ToolRouter) -> None:
    def scores(text: str) -> dict[str, float]:
        return {t.name: t.score for t in router.rank(text)}

    def top_of(s: dict[str, float]) -> str:
        return max(s, key=s.get)

    mixes: dict[str, Callable[[str, str], str]] = {
        "request only": lambda q, c: top_of(scores(q)),
        "step only": lambda q, c: top_of(scores(c)),
        "max(request, step)": lambda q, c: top_of({n: max(v, scores(c)[n]) for n, v in scores(q).items()}),
        "embed 'request\\nstep'": lambda q, c: top_of(scores(f"{q}\n{c}")),
        "0.3 request + 0.7 step (rank)": lambda q, c: router.rank(q, c, k=1)[0].name,
    }
    for label, pick in mixes.items():
        right = sum(pick(q, c) == e for e, q, c in CONTEXT_REQUESTS)
        print(f"  {label:32s} {right}/{len(CONTEXT_REQUESTS)}")


def threshold_sweep(router: ToolRouter) -> None:
    labelled = [(e, q) for e, en, zh in BENCH_REQUESTS for q in (en, zh)] + TEST_REQUESTS
    tool_tops = [(router.rank(q, k=1)[0], e) for e, q in labelled]
    chat_scores = [router.rank(q, k=1)[0].score for q in NO_TOOL]
    print(f"  lowest right-tool scores: {', '.join(f'{s:.3f}' for s in sorted(t.score for t, e in tool_tops if t.name == e)[:4])}")
    print(f"  highest no-tool scores:   {', '.join(f'{s:.3f}' for s in sorted(chat_scores, reverse=True)[:4])}")
    print("  threshold  tool requests right  no-tool requests silent")
    for i in range(9):
        t = 0.25 + 0.025 * i
        right = sum(top.name == e and top.score >= t for top, e in tool_tops)
        silent = sum(s < t for s in chat_scores)
        print(f"  {t:9.3f}  {right:6d}/{len(tool_tops)}            {silent:6d}/{len(chat_scores)}")


def main() -> None:
    encoder = SentenceEncoder(threads=2)
    start = time.perf_counter()
    encoder.load()
    print(f"encoder {encoder.name} ({encoder.dim}-d): load {time.perf_counter() - start:.2f} s")

    routers = {
        "(a) nearest-example": ToolRouter(make_registry("all"), encoder, scoring="nearest"),
        "(b) description only": ToolRouter(make_registry("none"), encoder),  # either scoring: one text
        "(c) centroid, the default": ToolRouter(make_registry("all"), encoder, scoring="centroid"),
        "(d) centroid, English-only examples": ToolRouter(make_registry("english"), encoder, scoring="centroid"),
    }
    for title, router in routers.items():
        accuracy_table(title, router)
    print("\n== summary: bench 10x2 top-1 | test requests top-1 | policy model top_k=3 offer holds the right tool")
    for title, router in routers.items():
        right = sum(router.rank(q, k=1)[0].name == e for e, en, zh in BENCH_REQUESTS for q in (en, zh))
        print(f"  {title:36s} {right:2d}/{2 * len(BENCH_REQUESTS)} | {held_out_accuracy(router)} | {model_offer(router)}")
    print("\n== time per rank() call (new request = embed it + score every tool)")
    for title, router in routers.items():
        print(f"  {title:36s} {timing(router, encoder)}")

    for title in ("(a) nearest-example", "(c) centroid, the default"):
        print(f"\n== plan step as context, {len(CONTEXT_REQUESTS)} multi-step cases, {title}")
        context_mixes(routers[title])
    for title in ("(a) nearest-example", "(c) centroid, the default"):
        print(f"\n== router threshold, {title}")
        threshold_sweep(routers[title])


if __name__ == "__main__":
    main()
