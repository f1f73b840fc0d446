"""Word-problem benchmark: how many short grade-school word problems a model solves with the calculator.

Run: .venv/bin/python bench/word_problems.py [--llm bundled] [--llm scripted ...] [--limit N] [-o DIR]

Suite: bench/word_problems.jsonl, 66 problems written for this bench, half English (wp-en-*) and
half simplified Chinese (wp-zh-*): a price times a count, an even split, percentages and
discounts, differences, speed x time, averages, unit conversions, change after shopping; one or
two operations each, with exact numeric answers (checked as the answer's last number, as
everywhere in `mmagent eval`). `--suite bench/word_problems_heldout.jsonl` runs 40 more (ho-en-*,
ho-zh-*), written after the calculator's worked examples and their ranking were fixed and never
used to choose them: the check that the examples generalise beyond the problems they were
tuned on.

The suite runs through the real CLI, `mmagent eval bench/word_problems.jsonl --llm SPEC -o DIR`,
in a subprocess (one fresh agent per model, concurrency 1). The per-task records it writes,
`DIR/<suite>--<model>.jsonl`, are then scored here, per model: tasks, passed, accuracy (all,
English, Chinese: by the id's `en`/`zh` part), tool use (tasks that called the calculator), mean
and median seconds per task (model load included in the first task), and the failed ids with
their answers. `--llm scripted` is the oracle (each task replays its own script): it must score
100%, so its row measures the harness and the calculator, not a model. `--from DIR` scores the
records of an earlier run without running anything.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUITE = Path(__file__).with_name("word_problems.jsonl")
TOOL = "calculator"
_LANG = re.compile(r"(?:^|[-_])(en|zh)(?:[-_]|$)")


def mmagent_command() -> list[str]:
    """The installed entry point: the repository's venv first, then the running interpreter's."""
    for script in (ROOT / ".venv" / "bin" / "mmagent", Path(sys.executable).parent / "mmagent"):
        if script.exists():
            return [str(script)]
    return [sys.executable, "-c", "from apps.cli import main; main()"]


def suite_name(path: Path) -> str:
    """The suite's name as `mmagent eval` uses it in file names: the header's, else the file stem."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip() and not line.lstrip().startswith("//"):
                try:
                    head = json.loads(line)
                except json.JSONDecodeError:
                    break
                if isinstance(head, dict) and isinstance(head.get("suite"), str):
                    return head["suite"]
                break
    return path.stem


def slug(label: str) -> str:
    # As apps/eval/command.py names the results file of a model.
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def run_eval(suite: Path, llms: list[str], output: Path, limit: int | None) -> tuple[int, float]:
    command = [*mmagent_command(), "eval", str(suite), "-o", str(output)]
    for llm in llms:
        command += ["--llm", llm]
    if limit:
        command += ["--limit", str(limit)]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT)  # its table and progress go straight to the terminal
    return done.returncode, time.perf_counter() - start


def results_files(output: Path, suite: str, llms: list[str] | None) -> list[tuple[str, Path | None, str | None]]:
    """(model, records file, why it failed) per model: from summary.json when the eval wrote one,
    else from the file names."""
    summary = output / "summary.json"
    if summary.is_file():
        rows = json.loads(summary.read_text(encoding="utf-8")).get("rows", [])
        out = []
        for row in rows:
            if row.get("suite") != suite or (llms and row.get("model") not in llms):
                continue
            path = Path(row["results"]) if row.get("results") else None
            out.append((row["model"], path, row.get("failed") or row.get("skipped")))
        if out:
            return out
    if llms:
        return [(llm, output / f"{suite}--{slug(llm)}.jsonl", None) for llm in llms]
    found = sorted(p for p in output.glob(f"{suite}--*.jsonl") if not p.name.endswith("--oracle-script.jsonl"))
    return [(p.stem.split("--", 1)[1], p, None) for p in found]


def read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from an interrupted run
        if isinstance(record, dict) and "id" in record:
            records.append(record)
    return records


def language(task_id: str) -> str | None:
    found = _LANG.search(str(task_id))
    return found.group(1) if found else None


def rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def figures(model: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    passed = [r for r in records if r.get("passed") is True]
    by_lang = {lang: [r for r in records if language(r["id"]) == lang] for lang in ("en", "zh")}
    tool_used = [r for r in records if any(s.get("tool") == TOOL for s in r.get("steps") or [])]
    seconds = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    failed = [r for r in records if r.get("passed") is not True]
    return {
        "model": model,
        "tasks": len(records),
        "passed": len(passed),
        "acc %": rate(len(passed), len(records)),
        **{f"{lang} %": (f"{rate(sum(r.get('passed') is True for r in rs), len(rs))} ({len(rs)})" if rs else "-")
           for lang, rs in by_lang.items()},
        "tool use %": rate(len(tool_used), len(records)),
        "mean s": f"{statistics.mean(seconds):.2f}" if seconds else "-",
        "median s": f"{statistics.median(seconds):.2f}" if seconds else "-",
        "_failed": failed,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [c for c in rows[0] if not c.startswith("_")]
    grid = [columns, *([str(row.get(c, "")) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    for number, line in enumerate(grid):
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if number == 0:
            print("  ".join("-" * w for w in widths))


def answer_text(record: dict[str, Any], width: int = 80) -> str:
    text = record.get("answer")
    if not text:
        text = f"error: {record['error']}" if record.get("error") else "(no answer)"
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", action="append", metavar="SPEC",
                        help="model spec for `mmagent eval` (repeatable; default: bundled); scripted = the oracle")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N tasks")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR", help="keep the eval's files here (default: a temporary folder)")
    parser.add_argument("--suite", type=Path, default=SUITE, help="the suite file (default: %(default)s)")
    parser.add_argument("--from", dest="previous", type=Path, metavar="DIR", help="score the records of an earlier run in DIR; run nothing")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    suite = suite_name(args.suite)
    with tempfile.TemporaryDirectory(prefix="word-problems-") as tmp:
        if args.previous:
            output, llms, status, wall = args.previous, args.llm, 0, None
        else:
            llms = args.llm or ["bundled"]
            output = args.output or Path(tmp)
            status, wall = run_eval(args.suite, llms, output, args.limit)
        rows, notes = [], []
        for model, path, why in results_files(output, suite, llms):
            if path is None or not path.is_file():
                notes.append(f"{model}: no records ({why or f'{path} not found'})")
                continue
            records = read_records(path)
            if not records:
                notes.append(f"{model}: no records in {path}" + (f" ({why})" if why else ""))
                continue
            rows.append(figures(model, records))
            if why:
                notes.append(f"{model}: {why}")

    print(f"\n== word problems: suite {suite} ({args.suite.name})" + (f", limit {args.limit}" if args.limit else "")
          + (f", eval wall time {wall:.1f} s" if wall is not None else ""))
    if rows:
        print_table(rows)
    for row in rows:
        failed = row["_failed"]
        print(f"\n{row['model']}: {len(failed)} failed" + (":" if failed else ""))
        for record in failed:
            print(f"  {record['id']:12s} expected {record.get('expected')!s:>10}  answer: {answer_text(record)}")
    for note in notes:
        print("note:", note)
    if args.output and not args.previous:
        print(f"\nrecords in {output}")
    if status or not rows:
        sys.exit(status or 1)


if __name__ == "__main__":
    main()
