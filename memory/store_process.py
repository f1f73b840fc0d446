"""Long-term memory's Chroma collections, opened in a child process of their own (the server's).

An embedded Chroma write holds the GIL for all of its ~6 ms: the Rust binding waits for its
own worker threads without releasing it, so in the server every request stalled behind every
memory write (bench/load.py: a quarter of the GIL samples went to `upsert`). Chroma's own
server (`chroma run` with `HttpClient`) frees the GIL but costs more Python per call than it
saves: about 2.6 ms a call on 2 cores, embeddings travelling as JSON. Here one child process
(multimodal/child_process.py) owns the memory folder, and the collections' calls are made
there. Only that child opens the folder, so a server never has two Chroma clients on it.

Every call sent is safe to repeat (upserts, updates and deletes name their ids), as a retry
after a child died needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multimodal.child_process import ChildProcess

#: The collection methods memory uses; nothing else is sent to the child.
METHODS = frozenset({"get", "query", "upsert", "update", "delete", "count", "add"})


class ChromaProcess:
    """The child and proxies for its collections (`collections()`, for `LongTermMemory`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.child = ChildProcess("the memory store", _open, (str(self.path),))

    def collections(self) -> dict[str, CollectionProxy]:
        from memory.store import COLLECTIONS

        self.call("memory", "count", {})  # starts the child and opens the store now, not in a request
        return {kind: CollectionProxy(self, kind) for kind in COLLECTIONS}

    def call(self, kind: str, method: str, kwargs: dict[str, Any]) -> Any:
        return self.child.call(_call, kind, method, kwargs)

    def close(self) -> None:
        self.child.close()


class CollectionProxy:
    """Stands for one Chroma collection of the child: the same calls, made there."""

    def __init__(self, process: ChromaProcess, kind: str) -> None:
        self._process = process
        self._kind = kind

    def __getattr__(self, method: str) -> Any:
        if method not in METHODS:
            raise AttributeError(method)
        return lambda **kwargs: self._process.call(self._kind, method, kwargs)

    def nearest(self, vector: Any, where: dict[str, Any], k: int) -> list[Any]:
        """`memory.store.nearest` run in the child: only the k hits travel back, not the
        embeddings of every item it ranked."""
        return self._process.child.call(_nearest, self._kind, vector, where, k)


# ---------------------------------------------------------------- in the child

_collections: dict[str, Any] = {}  # the child's own: only the child process ever fills it


def _open(path: str) -> None:
    from memory.store import open_collections

    _collections.update(open_collections(Path(path)))


# Errors need no wrapping here: the child's runner sends back any exception that can travel.


def _nearest(kind: str, vector: Any, where: dict[str, Any], k: int) -> list[Any]:
    from memory.store import nearest

    return nearest(_collections[kind], vector, where, k)


def _call(kind: str, method: str, kwargs: dict[str, Any]) -> Any:
    return getattr(_collections[kind], method)(**kwargs)
