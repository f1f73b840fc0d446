"""Which models an eval runs, and the oracle behind `--llm scripted`.

One script shared by every task cannot score anything, so `--llm scripted` (no file) runs each
task on its own script, the suite's `script` field: the eval writes them into one scripted
file, each line tagged with the task's session (agent/llm/scripted.py), and gives each task
that session as its thread. The oracle calls the right tool with the right arguments and
answers with the known result, so its row measures the harness and the real tools.

`scripted:NAME` also finds the scripted models shipped in apps/eval/scripts (e.g.
`scripted:garbage`, a model that plans nonsense, calls a tool wrongly and answers Lorem ipsum).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from apps.errors import UserError
from apps.eval.prepare import Prepared
from apps.tasks import Task

ORACLE = "scripted"
SHIPPED_SCRIPTS = Path(__file__).with_name("scripts")
_KINDS = ("auto", "bundled", "hf", "openai", "scripted")
_IMAGE = re.compile(r"\{image(?::(\d+))?\}")


def check_model(spec: str) -> str:
    """The spec as it will run (a scripted file made absolute); UserError before anything
    starts when it cannot."""
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    needs_arg = kind in ("hf", "openai") or (kind == "scripted" and spec != ORACLE)
    if kind not in _KINDS or (kind in ("auto", "bundled") and arg) or (needs_arg and not arg):
        from agent.llm.factory import SPEC_HELP

        raise UserError(f"unknown LLM spec {spec!r}: {SPEC_HELP}, or scripted for each task's own script")
    if kind != "scripted" or not arg:
        return spec
    given = Path(arg).expanduser()
    if given.is_file():
        return f"scripted:{given.resolve()}"
    for candidate in (SHIPPED_SCRIPTS / arg, SHIPPED_SCRIPTS / f"{arg}.jsonl"):
        if candidate.is_file() and candidate.parent == SHIPPED_SCRIPTS:
            return f"scripted:{candidate}"
    shipped = ", ".join(p.stem for p in sorted(SHIPPED_SCRIPTS.glob("*.jsonl")))
    raise UserError(f"scripted model file not found: {arg} (shipped ones: {shipped})")


def session_id(suite: str, task: Task) -> str:
    """The task's thread and scripted session: fixed, so the oracle file can name it."""
    return f"eval-{suite}-{task.id}"


def write_oracle(prepared: Prepared, path: Path) -> Path:
    """One scripted file with every task's own replies, each line tagged with its session."""
    lines = []
    for task in prepared.tasks:
        for item in prepared.scripts.get(task.id, []):
            line = {**fill_images(item, task.images), "session": session_id(prepared.suite.name, task)}
            lines.append(json.dumps(line, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def fill_images(value: Any, images: list[str]) -> Any:
    """`value` with "{image}" / "{image:N}" replaced by the task's image paths (the oracle must
    name files that exist only once the eval has drawn them)."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            index = int(match.group(1) or 1) - 1
            return images[index] if 0 <= index < len(images) else match.group(0)

        return _IMAGE.sub(one, value)
    if isinstance(value, list):
        return [fill_images(v, images) for v in value]
    if isinstance(value, dict):
        return {k: fill_images(v, images) for k, v in value.items()}
    return value
