"""The eval's own workspace, so that scores never depend on the user's data, and suite set-up.

The workspace (default `<data_dir>/cache/eval`) holds a knowledge base of its own with the
shared corpus ingested (unchanged files are skipped by content hash, so later runs reuse it),
and the test pictures. The agent runs with the user's settings (models and caches are shared)
except that the image tools may read the pictures folder and web search is off: a result must
not depend on the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Settings
from apps.errors import UserError
from apps.eval.suites import Suite
from apps.tasks import Task, _image_path

#: ../shared/corpus next to the repository: real notes, read in place and never copied.
DEFAULT_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
#: Distractor notes for the noise-robustness suite: related topics, no answers (written for the eval).
NOISE = Path(__file__).with_name("noise")


@dataclass
class Prepared:
    suite: Suite
    tasks: list[Task] = field(default_factory=list)  # ready to run: images resolved, expectations in metadata
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task id -> oracle replies
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the whole suite cannot run here


class Workspace:
    def __init__(self, settings: Settings, root: Path, corpus: Path = DEFAULT_CORPUS) -> None:
        self.root = root
        self.corpus = corpus
        self.pictures = root / "pictures"
        models = settings.models.model_copy(update={"allowed_image_dirs": [*settings.models.allowed_image_dirs, self.pictures]})
        knowledge = settings.knowledge.model_copy(update={"web_search": False})
        #: What the agent runs with.
        self.settings = settings.model_copy(update={"models": models, "knowledge": knowledge})
        self._kb: Any = None
        self._registry: Any = None
        self._noisy: Any = None
        self._noisy_registry: Any = None
        self._ingested = False
        self._drawn = False

    # ------------------------------------------------------------ parts, made on first use

    @property
    def knowledge_base(self):
        if self._kb is None:
            from memory.knowledge import KnowledgeBase

            # Its own data folder: the user's knowledge base is neither read nor touched.
            self._kb = KnowledgeBase(self.settings.model_copy(update={"data_dir": self.root / "knowledge"}))
        return self._kb

    def registry(self, noisy: bool = False):
        """The default tools, with the workspace's knowledge base behind retrieve and search
        (`noisy`: the one that also holds the distractor notes)."""
        from agent.runner import default_tools

        if noisy:
            if self._noisy_registry is None:
                self._noisy_registry = default_tools(self.settings, knowledge=self.noisy_knowledge_base)
            return self._noisy_registry
        if self._registry is None:
            self._registry = default_tools(self.settings, knowledge=self.knowledge_base)
        return self._registry

    @property
    def noisy_knowledge_base(self):
        """The corpus plus the distractor notes, in a data folder of its own (the plain corpus
        suites never see the noise)."""
        if self._noisy is None:
            from memory.knowledge import KnowledgeBase

            self._noisy = KnowledgeBase(self.settings.model_copy(update={"data_dir": self.root / "knowledge-noisy"}))
            self._noisy.ingest([self.corpus, NOISE])
        return self._noisy

    def close(self) -> None:
        for kb in (self._kb, self._noisy):
            if kb is not None:
                kb.close()

    # ------------------------------------------------------------ set-up

    def ingest_corpus(self) -> str:
        """Bring the workspace's knowledge base in line with the corpus; returns a report line."""
        kb = self.knowledge_base
        report = kb.ingest([self.corpus])
        current = {f.path for f in report.files if f.status != "skipped"}
        removed = [s["source"] for s in kb.sources() if s["source"] not in current]
        for source in removed:  # files gone from the corpus must not be found any more
            kb.delete_source(source)
        self._ingested = True
        return f"corpus {self.corpus}: {report.summary()}" + (f"; {len(removed)} removed" if removed else "")

    def prepare(self, suite: Suite, *, limit: int | None = None, on_note: Callable[[str], None] | None = None) -> Prepared:
        """The suite's runnable tasks, after its set-up; `on_note` receives set-up report lines."""
        from apps.eval.pictures import draw_pictures

        out = Prepared(suite=suite, problems=list(suite.problems))
        if "corpus" in suite.needs:
            if not self.corpus.is_dir():
                out.skipped = f"corpus not found at {self.corpus}"
                return out
            if not self._ingested:
                line = self.ingest_corpus()
                if on_note:
                    on_note(line)
        if "noise" in suite.needs and "corpus" in suite.needs:
            self.noisy_knowledge_base  # noqa: B018 - ingest before the clock of the first task starts
        if "images" in suite.needs and not self._drawn:
            draw_pictures(self.pictures)
            self._drawn = True
        image_base = self.pictures if "images" in suite.needs else suite.path.parent
        for task in suite.tasks[:limit] if limit else suite.tasks:
            try:
                images = [_image_path(ref, image_base) for ref in task.images]
            except UserError as exc:
                out.problems.append(f"{suite.path}: task {task.id}: {exc}")
                continue
            ready = task.as_task(suite.name, rag="rag" in suite.needs)
            ready.images = images
            out.tasks.append(ready)
            if task.script:
                out.scripts[task.id] = task.script
        return out
