"""`mmagent eval SUITE... [--llm SPEC ...]`: every suite on every model, then one score table.

Each (suite, model) runs its tasks with `apps.tasks.run_local` on a fresh agent (threads and
memories in memory only) and writes the records of `mmagent run` to
`<output>/<suite>--<model>.jsonl`; the table goes to stdout and, with the rows as JSON, to
`table.md` and `summary.json` in the same folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from apps.errors import UserError, one_line
from apps.eval.oracle import ORACLE, check_model, session_id, write_oracle
from apps.eval.prepare import DEFAULT_CORPUS, Prepared, Workspace
from apps.eval.scoring import Row, markdown_table, score, text_table
from apps.eval.suites import read_suite, suite_paths


@click.command("eval")
@click.argument("suites", nargs=-1, required=True, metavar="SUITE...")
@click.option("--llm", "llms", multiple=True, metavar="SPEC",
              help="Model to evaluate (repeatable; default: the configured one). scripted = each task's own oracle "
                   "script; scripted:garbage = the shipped bad model; or bundled, hf:..., openai:..., scripted:<file>.")
@click.option("-o", "--output", type=click.Path(path_type=Path), metavar="DIR",
              help="Folder for the results (default: <data_dir>/eval-results/<UTC time>); files of the same names are replaced.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Tasks in flight at once (1 keeps latencies comparable between models).")
@click.option("--trials", default=1, show_default=True, type=click.IntRange(1, 20), help="Attempts per task (Reflexion retries).")
@click.option("--limit", type=click.IntRange(1, None), metavar="N", help="Run only the first N tasks of each suite.")
@click.option("--corpus", type=click.Path(path_type=Path), default=DEFAULT_CORPUS, show_default=True,
              help="The notes the corpus suite asks about.")
@click.option("--work-dir", type=click.Path(path_type=Path), metavar="DIR",
              help="The eval's own knowledge base and test pictures (default: <data_dir>/cache/eval).")
@click.option("--judge", metavar="SPEC", default=None,
              help="A model that grades RAG answers 1-5 against their reference (hf:..., openai:...); without one, rule checks only.")
def eval_command(suites: tuple[str, ...], llms: tuple[str, ...], output: Path | None, concurrency: int, trials: int,
                 limit: int | None, corpus: Path, work_dir: Path | None, judge: str | None) -> None:
    """Run SUITE (arithmetic, corpus, images, all, or a suite file) on each model and print a score table."""
    from agent.config import load_settings

    settings = load_settings()
    if trials == 1:
        # A reflection is written for the next attempt; with none to come it would only become a
        # note recalled into later tasks, and a task's score would depend on the order of the run.
        settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"reflection": False})})
    models = [(spec.strip(), check_model(spec)) for spec in (llms or (settings.llm,))]
    read = [read_suite(path) for path in suite_paths(suites)]
    names = [s.name for s in read]
    if len(set(names)) < len(names):
        raise UserError(f"two suites share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); rename one")
    output = output or settings.data_dir / "eval-results" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    output.mkdir(parents=True, exist_ok=True)
    work = Workspace(settings, work_dir or settings.data_cache_dir / "eval", corpus.expanduser().resolve())
    try:
        with _env_default("HF_HUB_OFFLINE", "1"):
            rows = asyncio.run(_evaluate(work, read, models, output, limit=limit, concurrency=concurrency, trials=trials,
                                         judge=check_model(judge) if judge else None))
    finally:
        work.close()
    click.echo(text_table(rows))
    (output / "table.md").write_text(markdown_table(rows) + "\n", encoding="utf-8")
    summary = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "suites": names,
               "models": [label for label, _ in models], "limit": limit, "trials": trials, "concurrency": concurrency,
               "rows": [r.model_dump() for r in rows]}
    (output / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    click.echo(f"results in {output}", err=True)
    if any(r.failed for r in rows):
        sys.exit(1)


@contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """An eval never downloads models (a score must not depend on the network): offline unless
    the user says otherwise, and only while the eval runs."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


async def _evaluate(work: Workspace, suites, models: list[tuple[str, str]], output: Path, *, limit: int | None,
                    concurrency: int, trials: int, judge: str | None = None) -> list[Row]:
    rows: list[Row] = []

    def note(line: str) -> None:
        click.echo(line, err=True)  # set-up reports and skips go where progress goes, not into the table

    for suite in suites:
        prepared = await asyncio.to_thread(work.prepare, suite, limit=limit, on_note=note)
        for problem in prepared.problems:
            note(f"skipped {problem}")
        if prepared.skipped:
            note(f"skipped suite {suite.name}: {prepared.skipped}")
            rows.append(Row(suite=suite.name, model="-", skipped=prepared.skipped))
            continue
        for label, spec in models:
            rows.append(await _run(work, prepared, label, spec, output, concurrency=concurrency, trials=trials, judge=judge))
    return rows


async def _run(work: Workspace, prepared: Prepared, label: str, spec: str, output: Path, *, concurrency: int, trials: int,
               judge: str | None = None) -> Row:
    from tqdm import tqdm

    from apps.tasks import result_writer, run_local

    suite = prepared.suite.name
    if spec == ORACLE:
        spec = "scripted:" + str(write_oracle(prepared, output / f"{suite}--oracle-script.jsonl"))
    results = output / f"{suite}--{_slug(label)}.jsonl"
    records: list[dict[str, Any]] = []
    with results.open("w", encoding="utf-8") as sink, tqdm(
        total=len(prepared.tasks), unit="task", desc=f"{suite} · {label}", file=sys.stderr, dynamic_ncols=True, disable=None
    ) as bar:
        on_result = result_writer(sink, bar, records)
        try:
            await run_local(work.settings, spec, prepared.tasks, concurrency=concurrency, trials=trials, on_result=on_result,
                            registry=work.registry(noisy="noise" in prepared.suite.needs), thread_id=lambda task: session_id(suite, task))
        except Exception as exc:  # noqa: BLE001 - a model that cannot start fails its row, not the eval
            from apps.cli import describe_error

            why = one_line(describe_error(exc), 300)
            bar.write(f"error: {suite} on {label}: {why}", file=sys.stderr)
            return Row(suite=suite, model=label, failed=why, results=str(results))
    if judge and "rag" in prepared.suite.needs:
        await asyncio.to_thread(_judge, work, judge, records, results)
    return score(suite, label, records, results)


def _judge(work: Workspace, spec: str, records: list[dict[str, Any]], results: Path) -> None:
    """Grades go into the records (and their file), so a results file can be re-scored alone."""
    from agent.llm.completion import completion
    from agent.llm.factory import make_backend
    from apps.eval.rag_metrics import judge_records

    judge_records(records, completion(make_backend(spec, work.settings), max_tokens=4))
    results.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records), encoding="utf-8")


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"
