"""`mmagent run TASKS.jsonl -o RESULTS.jsonl`: scripted task runs (docs/tasks.md).

Each line of TASKS.jsonl is a task `{"id", "input", "images"?, "expected"?, "check"?}`. Tasks
run concurrently on one agent (or as Ray tasks, one agent each); every result is appended to
RESULTS.jsonl as soon as it finishes, so an interrupted run loses nothing and `--resume` skips
the ids already there. Expected answers are checked, and `--trials K` retried with Reflexion,
by `agent.trials.run_with_trials`. Task runs keep threads and memories in memory only:
a run's outcome must not depend on what earlier runs left behind.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from apps.errors import UserError, one_line

TASK_USER = "tasks"


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    input: str = Field(min_length=1)
    images: list[str] = Field(default_factory=list)
    expected: Any = None
    check: str | None = Field(None, description="exact | numeric | contains | regex:<p> | an expression over answer/expected")
    task_type: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict, description="Copied to the result as is.")

    @field_validator("id", mode="before")
    @classmethod
    def _number_ids(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass
class TaskFile:
    tasks: list[Task] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong", already skipped


def read_tasks(path: Path) -> TaskFile:
    """Valid tasks in file order; malformed lines, duplicate ids and missing images are
    reported and skipped so that one bad line does not stop a long run."""
    if not path.is_file():
        raise UserError(f"tasks file not found: {path}")
    out, seen = TaskFile(), set()
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            where = f"{path}:{number}"
            try:
                task = Task.model_validate_json(line)
            except ValidationError as exc:
                out.problems.append(f"{where}: {_validation_text(exc)}")
                continue
            if task.id in seen:
                out.problems.append(f"{where}: duplicate id {task.id!r}")
                continue
            try:
                task.images = [_image_path(ref, path.parent) for ref in task.images]
            except UserError as exc:
                out.problems.append(f"{where}: {exc}")
                continue
            seen.add(task.id)
            out.tasks.append(task)
    return out


def _validation_text(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return f"not valid JSON ({first.get('ctx', {}).get('error', first['msg'])})"
    where = ".".join(str(p) for p in first["loc"])
    return one_line(f"{where}: {first['msg']}" if where else first["msg"], 300)


def _image_path(ref: str, base: Path) -> str:
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base / path  # relative to the tasks file
    if not path.is_file():
        raise UserError(f"image not found: {ref}")
    return str(path.resolve())


def finished_ids(path: Path) -> set[str]:
    """Ids already in a results file (a torn last line from a crash is ignored)."""
    ids: set[str] = set()
    if not path.is_file():
        return ids
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                ids.add(record["id"])
    return ids


# ---------------------------------------------------------------- one task


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


async def run_task(agent, task: Task, trials: int, *, thread_id: str | None = None) -> dict[str, Any]:
    """One task's result record; failures become the record's `error`, never an exception.
    `thread_id` (also the scripted-model session) defaults to a fresh one."""
    from memory.evaluate import CheckError
    from agent.trials import run_with_trials

    thread_id = thread_id or "task-" + uuid.uuid4().hex
    record: dict[str, Any] = {"id": task.id, "input": task.input, "started_at": _now()}
    start = time.perf_counter()
    try:
        if task.expected is None and task.check is None:
            # Nothing to evaluate, so nothing to retry: one plain run.
            result = await agent.arun(task.input, thread_id=thread_id, images=task.images, user_id=TASK_USER)
            outcome: dict[str, Any] = {"passed": None, "reason": None, "trials": 1, "reflections": []}
        else:
            trials_result = await run_with_trials(
                agent, task.input, expected=task.expected, check=task.check, trials=trials,
                thread_id=thread_id, user_id=TASK_USER, images=task.images, task_type=task.task_type,
            )
            result = trials_result.final
            last = trials_result.trials[-1]
            outcome = {
                "passed": trials_result.passed, "reason": last.reason,
                "trials": len(trials_result.trials), "reflections": trials_result.reflections,
            }
        record.update(
            answer=result.answer, **outcome, expected=task.expected, check=task.check,
            steps=result.steps, n_steps=len(result.steps), artifacts=result.artifacts, plan=result.plan,
            error=result.error, thread_id=result.thread_id,
        )
    except CheckError as exc:
        record.update(answer=None, passed=False, error=f"invalid check: {exc}", steps=[], n_steps=0, artifacts=[])
    except Exception as exc:  # noqa: BLE001 - one task's failure is recorded; the run goes on
        record.update(answer=None, passed=False if task.expected is not None or task.check else None,
                      error=f"{type(exc).__name__}: {one_line(str(exc))}", steps=[], n_steps=0, artifacts=[])
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["finished_at"] = _now()
    if task.metadata:
        record["metadata"] = task.metadata
    return record


async def run_local(settings, llm: str | None, tasks: list[Task], *, concurrency: int, trials: int, on_result: Callable[[dict[str, Any]], None],
                    registry=None, thread_id: Callable[[Task], str] | None = None) -> None:
    """`registry`: the tools (default: the built-in ones); `thread_id`: each task's thread and
    scripted session (default: a fresh one per task)."""
    from agent.runner import open_agent

    semaphore = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> None:
        async with semaphore:
            on_result(await run_task(agent, task, trials, thread_id=thread_id(task) if thread_id else None))

    async with open_agent(settings, llm=llm, registry=registry, persist=False, warm_up=True) as agent:
        await asyncio.gather(*(one(t) for t in tasks))


# ---------------------------------------------------------------- Ray


def _ray_task(settings, llm: str | None, task: dict[str, Any], trials: int) -> dict[str, Any]:
    """Runs in a Ray worker: its own agent for this one task."""
    from agent.runner import open_agent

    async def go() -> dict[str, Any]:
        async with open_agent(settings, llm=llm, persist=False) as agent:
            return await run_task(agent, Task.model_validate(task), trials)

    return asyncio.run(go())


def run_ray(settings, llm: str | None, tasks: list[Task], *, concurrency: int, trials: int, address: str | None,
            on_result: Callable[[dict[str, Any]], None]) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        # address=None starts a local cluster; "auto" or "ray://host:port" joins an existing one.
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        remote = ray.remote(max_retries=0)(_ray_task)
        queue = list(tasks)
        pending: dict[Any, Task] = {}
        while queue or pending:
            while queue and len(pending) < concurrency:
                task = queue.pop(0)
                pending[remote.remote(settings, llm, task.model_dump(), trials)] = task
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    on_result(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - a dead worker fails its task, not the run
                    on_result({"id": task.id, "input": task.input, "answer": None, "passed": None, "error": f"ray: {one_line(str(exc))}",
                               "steps": [], "n_steps": 0, "artifacts": [], "seconds": None, "finished_at": _now()})
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------- summary


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured latency)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(records: Iterable[dict[str, Any]], *, skipped: int, malformed: int) -> str:
    records = list(records)
    checked = [r for r in records if r.get("passed") is not None]
    passed = sum(1 for r in checked if r["passed"])
    latencies = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    rows = [
        ("tasks run", str(len(records))),
        ("passed", f"{passed}/{len(checked)} ({100 * passed / len(checked):.1f}%)" if checked else "- (no expected answers)"),
        ("errors", str(sum(1 for r in records if r.get("error")))),
        ("mean steps", f"{sum(r.get('n_steps', 0) for r in records) / len(records):.2f}" if records else "-"),
        ("mean trials", f"{sum(r.get('trials', 1) for r in records) / len(records):.2f}" if records else "-"),
        ("latency p50", f"{percentile(latencies, 50):.3f} s" if latencies else "-"),
        ("latency p95", f"{percentile(latencies, 95):.3f} s" if latencies else "-"),
        ("skipped (resume)", str(skipped)),
        ("malformed lines", str(malformed)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def result_writer(sink, bar, records: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    """Writes each result as soon as its task finishes (a crash loses none), keeps it for the
    summary and reports an error above the progress bar."""

    def on_result(record: dict[str, Any]) -> None:
        sink.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        sink.flush()
        records.append(record)
        bar.update(1)
        if record.get("error"):
            bar.write(f"task {record['id']}: {one_line(record['error'], 200)}", file=sys.stderr)

    return on_result


# ---------------------------------------------------------------- command


def _absolute_llm(llm: str | None) -> str | None:
    # Ray workers may start in another directory: a scripted file must be named absolutely.
    if llm and llm.startswith("scripted:"):
        return "scripted:" + str(Path(llm.partition(":")[2]).expanduser().resolve())
    return llm


@click.command("run")
@click.argument("tasks_file", metavar="TASKS.jsonl", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, metavar="RESULTS.jsonl", type=click.Path(path_type=Path),
              help="Results, one JSON line per task, appended as tasks finish.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 1024), help="Tasks in flight at once.")
@click.option("--trials", default=1, show_default=True, type=click.IntRange(1, 20),
              help="Attempts per task with an expected answer (Reflexion: reflect on a failure, then retry).")
@click.option("--resume", is_flag=True, help="Skip the task ids already in the output file.")
@click.option("--llm", "llm", metavar="SPEC", help="auto | bundled | hf:<repo-or-path> | openai:<model> | scripted:<file.jsonl>")
@click.option("--ray", "use_ray", is_flag=True, help="Run the tasks as Ray tasks (a local Ray cluster unless --ray-address).")
@click.option("--ray-address", metavar="ADDR", help="Join this Ray cluster (e.g. auto, ray://host:10001); implies --ray.")
def run_command(tasks_file: Path, output: Path, concurrency: int, trials: int, resume: bool, llm: str | None,
                use_ray: bool, ray_address: str | None) -> None:
    """Run the tasks in TASKS.jsonl and append one result per task to RESULTS.jsonl."""
    from tqdm import tqdm

    from agent.config import load_settings

    task_file = read_tasks(tasks_file)
    for problem in task_file.problems:
        click.echo(f"skipped {problem}", err=True)
    if not task_file.tasks:
        raise UserError(f"no valid tasks in {tasks_file}")
    if output.exists() and output.stat().st_size and not resume:
        raise UserError(f"{output} already exists: pass --resume to skip the tasks it has, or choose another -o")
    done = finished_ids(output) if resume else set()
    todo = [t for t in task_file.tasks if t.id not in done]
    skipped = len(task_file.tasks) - len(todo)

    settings = load_settings(llm=llm)
    llm = _absolute_llm(llm)
    if use_ray or ray_address:
        settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    output.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    with output.open("a", encoding="utf-8") as sink, tqdm(total=len(todo), unit="task", file=sys.stderr, dynamic_ncols=True) as bar:
        if sink.tell() and not output.read_bytes().endswith(b"\n"):
            sink.write("\n")  # a line torn by a crash stays on its own line

        on_result = result_writer(sink, bar, records)
        if todo and (use_ray or ray_address):
            run_ray(settings, llm, todo, concurrency=concurrency, trials=trials, address=ray_address, on_result=on_result)
        elif todo:
            asyncio.run(run_local(settings, llm, todo, concurrency=concurrency, trials=trials, on_result=on_result))
    click.echo(summary(records, skipped=skipped, malformed=len(task_file.problems)))
