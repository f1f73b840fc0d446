"""Scores of one (suite, model) run, from its result records alone, and the score table.

Per row: passed/total and pass %; tool use (of the tasks that name a tool, how many called it);
errors (runs the model could not finish: the record's `error`); tool errors (tasks where a tool
call failed, e.g. an image model without weights); mean tool calls per task; p50/p95 latency.
Tasks that name corpus sources add retrieval hit@1 and hit@k: whether the first passage, or
any passage, that retrieve/search returned in the run comes from an expected file. That scores
the retriever on the queries the model actually sent, whatever the model then wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from apps.eval.rag_metrics import RagScores, rag_scores
from apps.tasks import percentile

RETRIEVAL_TOOLS = ("retrieve", "search")


class Row(BaseModel):
    suite: str
    model: str
    tasks: int = 0
    checked: int = 0
    passed: int = 0
    tool_expected: int = 0
    tool_used: int = 0
    errors: int = 0
    tool_errors: int = 0
    mean_steps: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    retrieval_tasks: int = 0
    hit_at_1: int = 0
    hit_at_k: int = 0
    k: int | None = None  # the largest number of passages a retrieval returned
    rag: RagScores | None = None  # RAG generation metrics (suites that need "rag")
    results: str | None = None  # the JSONL file of the records
    skipped: str | None = None  # the suite could not run here (e.g. no corpus)
    failed: str | None = None  # the model could not be started

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.checked if self.checked else None


def score(suite: str, model: str, records: list[dict[str, Any]], results: Path | None = None) -> Row:
    row = Row(suite=suite, model=model, tasks=len(records), results=str(results) if results else None)
    for record in records:
        expect = (record.get("metadata") or {}).get("eval", {})
        steps = record.get("steps") or []
        if record.get("passed") is not None:
            row.checked += 1
            row.passed += bool(record["passed"])
        if expect.get("tool"):
            row.tool_expected += 1
            row.tool_used += any(s.get("tool") == expect["tool"] for s in steps)
        row.errors += bool(record.get("error"))
        row.tool_errors += any(not s.get("ok", True) for s in steps)
        if expect.get("sources"):
            row.retrieval_tasks += 1
            ranks = [retrieval_rank(passages, expect["sources"]) for passages in retrieved(steps)]
            row.hit_at_1 += bool(ranks) and ranks[0] == 1
            row.hit_at_k += any(r is not None for r in ranks)
            sizes = [len(p) for p in retrieved(steps)]
            row.k = max([row.k or 0, *sizes]) or None
    row.rag = rag_scores(records)
    if records:
        row.mean_steps = round(sum(r.get("n_steps", 0) for r in records) / len(records), 2)
    latencies = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    if latencies:
        row.p50_s, row.p95_s = percentile(latencies, 50), percentile(latencies, 95)
    return row


def retrieved(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The passages of each successful retrieve/search call, in call order."""
    out = []
    for step in steps:
        if step.get("tool") not in RETRIEVAL_TOOLS or not step.get("ok"):
            continue
        result = step.get("result")
        passages = result.get("local") if isinstance(result, dict) else result
        out.append([p for p in passages if isinstance(p, dict)] if isinstance(passages, list) else [])
    return out


def retrieval_rank(passages: list[dict[str, Any]], sources: list[str]) -> int | None:
    """1-based rank of the first passage from an expected file (by file name or prefix)."""
    for rank, passage in enumerate(passages, 1):
        name = Path(str(passage.get("source", ""))).name
        if any(name.startswith(s) for s in sources):
            return rank
    return None


# ---------------------------------------------------------------- the table

COLUMNS = ("suite", "model", "passed", "pass %", "tool use", "errors", "tool errors", "mean steps", "p50 s", "p95 s", "retrieval", "rag")


def cells(row: Row) -> list[str]:
    if row.skipped or row.failed:
        why = f"skipped: {row.skipped}" if row.skipped else f"failed: {row.failed}"
        return [row.suite, row.model, why, *[""] * (len(COLUMNS) - 3)]
    rate = row.pass_rate
    retrieval = ""
    if row.retrieval_tasks:
        retrieval = f"hit@1 {row.hit_at_1}/{row.retrieval_tasks}, hit@{row.k or 'k'} {row.hit_at_k}/{row.retrieval_tasks}"
    return [
        row.suite,
        row.model,
        f"{row.passed}/{row.checked}" if row.checked else "-",
        f"{100 * rate:.1f}" if rate is not None else "-",
        f"{row.tool_used}/{row.tool_expected}" if row.tool_expected else "-",
        str(row.errors),
        str(row.tool_errors),
        f"{row.mean_steps:.2f}" if row.mean_steps is not None else "-",
        f"{row.p50_s:.2f}" if row.p50_s is not None else "-",
        f"{row.p95_s:.2f}" if row.p95_s is not None else "-",
        retrieval,
        row.rag.cell() if row.rag else "",
    ]


def text_table(rows: list[Row]) -> str:
    grid = [list(COLUMNS), *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |" for r in rows]
    return "\n".join(lines)
