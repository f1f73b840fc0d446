"""Suite files: what `mmagent eval SUITE` runs.

A suite is a JSONL file. Its first line may be a header

    {"suite": "corpus", "description": "...", "needs": ["corpus"]}

and every other line is one task in the format of `mmagent run` (docs/tasks.md) plus
    tool    the tool a good run calls (scored as the tool-use rate)
    source  the corpus file, by name or name prefix, that holds the answer, or a list of them
            (scored as retrieval hit@k, independently of the model's wording)
    script  the oracle's replies for `--llm scripted`, as scripted-model lines (docs/backends.md);
            "{image}" and "{image:N}" in them stand for the path of the task's first / N-th image
    answerable, reference  RAG suites: false when the documents lack the answer; a reference answer
`needs`: "corpus" ingests the shared corpus into the eval's own knowledge base; "rag" scores the
RAG metrics (apps/eval/rag_metrics.py); "noise" adds distractor notes (apps/eval/noise/) to a
knowledge base of its own (RGB-style noise robustness); "images" draws
the test pictures, and task images then name pictures (apps/eval/pictures.py) instead of files
next to the suite. Malformed lines are reported and skipped, as in `mmagent run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from apps.errors import UserError
from apps.tasks import Task, _validation_text

SHIPPED_DIR = Path(__file__).with_name("suites")
ALL = "all"


class SuiteHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    needs: list[Literal["corpus", "images", "rag", "noise"]] = Field(default_factory=list)


class SuiteTask(Task):
    tool: str | None = Field(None, min_length=1, max_length=100, description="The tool a good run calls.")
    source: list[str] = Field(default_factory=list, description="Corpus file names (or prefixes) that hold the answer.")
    script: list[dict[str, Any]] | None = Field(None, min_length=1, description="The oracle's scripted replies.")
    answerable: bool = Field(True, description="False: the documents do not hold the answer (scored as negative rejection).")
    reference: str | None = Field(None, max_length=4000, description="A reference answer (context recall, the judge's grade).")

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("script")
    @classmethod
    def _script_lines(cls, script: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        # The rules of agent/llm/scripted.py's load_script, checked per task so that one bad
        # script costs one task, not the oracle file of the whole suite.
        for number, item in enumerate(script or [], 1):
            if item.get("role", "assistant") != "assistant":
                raise ValueError(f"script line {number}: only assistant messages")
            if not item.get("content") and not item.get("tool_calls"):
                raise ValueError(f"script line {number}: a message needs content or tool_calls")
            if "session" in item:
                raise ValueError(f"script line {number}: the eval sets the session itself")
        return script

    def as_task(self, suite: str, rag: bool = False) -> Task:
        """The plain task `mmagent run` runs; what scoring needs travels in its metadata, so a
        results file can be scored on its own."""
        expect: dict[str, Any] = {"suite": suite}
        if self.tool:
            expect["tool"] = self.tool
        if self.source:
            expect["sources"] = list(self.source)
        if rag:
            expect.update(rag=True, answerable=self.answerable)
            if self.reference:
                expect["reference"] = self.reference
        plain = self.model_dump(include=set(Task.model_fields))
        return Task.model_validate({**plain, "metadata": {**self.metadata, "eval": expect}})


@dataclass
class Suite:
    name: str
    path: Path
    description: str = ""
    needs: list[str] = field(default_factory=list)
    tasks: list[SuiteTask] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong", already skipped


def shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.jsonl"))}


def suite_paths(names: tuple[str, ...] | list[str]) -> list[Path]:
    """Suite files for the names given on the command line: shipped names, `all`, or paths."""
    known = shipped()
    out: list[Path] = []
    for name in names:
        if name == ALL:
            found = list(known.values())
        elif name in known:
            found = [known[name]]
        elif Path(name).expanduser().is_file():
            found = [Path(name).expanduser().resolve()]
        else:
            choices = ", ".join([*known, ALL])
            raise UserError(f"unknown suite {name!r}: use one of {choices}, or the path of a suite file")
        out.extend(p for p in found if p not in out)
    return out


def read_suite(path: Path) -> Suite:
    suite = Suite(name=path.stem, path=path)
    seen: set[str] = set()
    first = True
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            where = f"{path}:{number}"
            if first and _is_header(line):
                first = False
                try:
                    header = SuiteHeader.model_validate_json(line)
                except ValidationError as exc:
                    raise UserError(f"{where}: bad suite header: {_validation_text(exc)}") from None
                suite.name, suite.description, suite.needs = header.suite, header.description, list(header.needs)
                continue
            first = False
            try:
                task = SuiteTask.model_validate_json(line)
            except ValidationError as exc:
                suite.problems.append(f"{where}: {_validation_text(exc)}")
                continue
            if task.id in seen:
                suite.problems.append(f"{where}: duplicate id {task.id!r}")
                continue
            seen.add(task.id)
            suite.tasks.append(task)
    return suite


def _is_header(line: str) -> bool:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(data, dict) and "suite" in data
