"""Where long-term memory lives: two Chroma collections (memories, notes) under the data folder.

We always pass our own embeddings (the app's offline, multilingual sentence encoder), so Chroma
never fetches its default embedding model, and an English memory is found by a Chinese question.
(LangGraph's SQLite store would be the other candidate, but its vector index needs SQLite
extension loading, which many Python builds, ours included, leave out.)

Similarity search ranks all of an owner's items exactly while they are few (`nearest`): Chroma's
HNSW graph loses items among identical vectors.
"""

from __future__ import annotations

import uuid
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from multimodal.group_commit import GroupCommit

COLLECTIONS = {"memory": "mmagent_memories", "note": "mmagent_notes"}
# The exact search grows with the owner's items (2 shared cores: 5 ms at 100, 20 ms at 500,
# against the index's 2 and 6 ms); past 500 the index answers.
EXACT_LIMIT = 500
# Owners with at most this many items are read in one call, every field included: below it a
# second call costs more than converting the extra metadata.
SMALL_LIMIT = 64

Hit = tuple[str, str, dict[str, Any], float]  # id, document, metadata, cosine distance


def memory_dir(data_dir: Path) -> Path:
    return data_dir / "memory"


def open_collections(path: Path | None) -> dict[str, Any]:
    """Chroma collections by kind: persistent at `path`, or in memory when `path` is None."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if path is None:
        client = chromadb.EphemeralClient(settings=chroma_settings)
        # Ephemeral clients share one in-process system: a unique suffix keeps agents apart.
        suffix = "_" + uuid.uuid4().hex[:8]
    else:
        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        suffix = ""
    return {
        kind: client.get_or_create_collection(name + suffix, embedding_function=None, metadata={"hnsw:space": "cosine"})
        for kind, name in COLLECTIONS.items()
    }


def nearest(collection: Any, vector: np.ndarray | list[float], where: dict[str, Any], k: int) -> list[Hit]:
    """The `k` items matching `where` closest to `vector`, best first.

    Exact when `where` matches at most EXACT_LIMIT items, else Chroma's filtered HNSW query.
    The index alone missed owners' items: when many users store the same sentence their vectors
    are identical, and rewriting one of them (upsert, or delete and add of its id) unlinks others
    in the graph, so no query reaches them whatever its ef. 50 users remembering "The user is
    running a load test." twice: 44 got two copies (the duplicate check found nothing). Even
    without rewrites, 2000 identical vectors left 575 unreachable. Old stores keep that damage.
    """
    # Most owners have few items: one call reads them all (one id more tells there are more).
    got = collection.get(where=where, include=["embeddings", "documents", "metadatas"], limit=SMALL_LIMIT + 1)
    if len(got["ids"]) <= SMALL_LIMIT:
        order = _ranked(got["embeddings"], vector, k)
        return [(got["ids"][i], got["documents"][i], got["metadatas"][i], distance) for i, distance in order]
    # One id past the limit, if any: half the time of fetching all ids up to it.
    if collection.get(where=where, include=[], limit=1, offset=EXACT_LIMIT)["ids"]:
        found = collection.query(
            query_embeddings=[vector], n_results=k, where=where, include=["documents", "metadatas", "distances"]
        )
        return list(zip(found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0]))
    # Embeddings first, the other fields for the top k only: converting every item's metadata
    # to Python costs more than the ranking.
    got = collection.get(where=where, include=["embeddings"])
    best = [(got["ids"][i], distance) for i, distance in _ranked(got["embeddings"], vector, k)]
    rows = collection.get(ids=[i for i, _ in best], where=where, include=["documents", "metadatas"])
    fields = {i: (d, m) for i, d, m in zip(rows["ids"], rows["documents"], rows["metadatas"])}
    return [(i, *fields[i], distance) for i, distance in best if i in fields]  # `if`: deleted meanwhile


def _ranked(embeddings: Any, vector: np.ndarray | list[float], k: int) -> list[tuple[int, float]]:
    """(row, Chroma's cosine distance) of the `k` rows closest to `vector`, best first."""
    if embeddings is None or len(embeddings) == 0:
        return []
    matrix = np.asarray(embeddings, dtype=np.float32)
    query = np.asarray(vector, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
    distances = 1.0 - (matrix @ query) / np.maximum(norms, 1e-12)
    return [(int(i), float(distances[i])) for i in np.argsort(distances, kind="stable")[:k]]


class CollectionWriter:
    """Writes to one Chroma collection; concurrent ones go out as one call (group commit).

    A Chroma write holds the GIL while it waits for its SQLite commit, about 7 ms for one item
    and 12 ms for 25, so under load one write at a time stalled every request of the server.
    Callers block (in a worker thread) until their own items are stored, as with a direct call.
    """

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self._commit: GroupCommit[tuple[str, dict[str, Any]], None] = GroupCommit(self._write)

    def upsert(self, ids: list[str], embeddings: list[Any], documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        self._commit.submit([("upsert", {"id": i, "embedding": e, "document": d, "metadata": m})
                             for i, e, d, m in zip(ids, embeddings, documents, metadatas, strict=True)])

    def update(self, ids: list[str], metadatas: list[dict[str, Any]]) -> None:
        """Metadata only (no documents: with them and no embeddings Chroma would embed with its
        default model, which it downloads)."""
        self._commit.submit([("update", {"id": i, "metadata": m}) for i, m in zip(ids, metadatas, strict=True)])

    def _write(self, items: list[tuple[str, dict[str, Any]]]) -> list[None]:
        # In order, one call per run of the same operation; Chroma takes an id once per call,
        # so the last write of an id in a run wins, as it would have one after the other.
        for op, run in groupby(items, key=lambda item: item[0]):
            rows = list({row["id"]: row for _, row in run}.values())
            ids, metadatas = [r["id"] for r in rows], [r["metadata"] for r in rows]
            if op == "upsert":
                self.collection.upsert(ids=ids, embeddings=[r["embedding"] for r in rows],
                                       documents=[r["document"] for r in rows], metadatas=metadatas)
            else:
                self.collection.update(ids=ids, metadatas=metadatas)
        return [None] * len(items)
