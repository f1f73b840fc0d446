"""The ingest pipeline: find files, skip unchanged ones by content hash, chunk, embed, store.

A file's hash covers its bytes and the chunking settings, so an unchanged file is skipped with
one metadata lookup, and a changed file (or new chunk sizes) replaces all of its old chunks.
Chunk ids derive from collection, source, hash and position: re-running a half-finished ingest
overwrites instead of duplicating. A bad file is reported and skipped; the batch goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from memory.knowledge.loaders import SUPPORTED

DEFAULT_COLLECTION = "default"


class FileResult(BaseModel):
    path: str
    status: Literal["added", "replaced", "unchanged", "skipped"]
    chunks: int = 0
    reason: str | None = None


class IngestReport(BaseModel):
    collection: str
    files: list[FileResult] = []
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "replaced"))

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "skipped"]

    def summary(self) -> str:
        return (f"{self.count('added')} added, {self.count('replaced')} replaced, {self.count('unchanged')} unchanged, "
                f"{self.count('skipped')} skipped; {self.chunks} chunks into collection {self.collection!r} "
                f"in {self.seconds:.1f} s")


def discover(paths: Iterable[Path | str]) -> tuple[list[Path], list[FileResult]]:
    """Files to ingest (folders walked recursively, supported types only, sorted, deduplicated),
    and results for named paths that cannot be ingested (missing, or an unsupported type)."""
    files: dict[Path, None] = {}
    problems: list[FileResult] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED and not any(p.startswith(".") for p in child.relative_to(path).parts):
                    files[child.resolve()] = None
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED:
                files[path.resolve()] = None
            else:
                problems.append(FileResult(path=str(path), status="skipped", reason=f"unsupported file type {path.suffix or '(none)'}"))
        else:
            problems.append(FileResult(path=str(path), status="skipped", reason="no such file or folder"))
    return list(files), problems


def content_hash(data: bytes, chunk_size: int, chunk_overlap: int) -> str:
    digest = hashlib.sha256(data)
    digest.update(f"|chunks:{chunk_size}/{chunk_overlap}".encode())
    return digest.hexdigest()


def chunk_id(collection: str, source: str, digest: str, position: int) -> str:
    return hashlib.sha1(f"{collection}\x00{source}\x00{digest}\x00{position}".encode()).hexdigest()
