"""The Chroma side of the knowledge base: embedded under the data folder, or a Chroma server.

One Chroma collection holds every knowledge-base collection; the user's collection name is a
metadata field, so a question can search one collection or all of them with a `where` filter.
The Chroma collection is named after the embedding model: vectors of two models never mix, and
switching models starts a fresh index (re-ingest to fill it). We always pass vectors ourselves,
so Chroma's default embedding function (which downloads a model) is never used.
"""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path
from typing import Any

from agent.config import Knowledge


def chroma_name(embedding: str) -> str:
    # Chroma names: 3-512 chars of [a-zA-Z0-9._-], alphanumeric at both ends.
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", embedding).strip("-._")[:200] or "default"
    return f"knowledge-{slug}"


class ChromaStore:
    """Thin, lazy wrapper: nothing connects until the first call."""

    def __init__(self, config: Knowledge, data_dir: Path, embedding: str) -> None:
        self.config = config
        self.path = data_dir / "chroma"
        self.name = chroma_name(embedding)
        self._client: Any = None
        self._collection: Any = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """Where the vectors live, for messages and `mmagent doctor`."""
        if self.config.chroma_host:
            return f"chroma server http://{self.config.chroma_host}:{self.config.chroma_port}"
        return f"embedded chroma at {self.path}"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import chromadb
                from chromadb.config import Settings as ChromaSettings

                settings = ChromaSettings(anonymized_telemetry=False)
                if self.config.chroma_host:
                    try:
                        self._client = chromadb.HttpClient(host=self.config.chroma_host, port=self.config.chroma_port, settings=settings)
                    except Exception as exc:  # connection refused, DNS, TLS: one readable line
                        raise RuntimeError(f"cannot reach the {self.where}: {exc}") from None
                else:
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            return self._client

    def collection(self) -> Any:
        if self._collection is None:
            client = self.client()
            self._collection = client.get_or_create_collection(
                self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}, metadata={"generation": "0"}
            )
        return self._collection

    def generation(self) -> str:
        """Changes on every write (by any process), so keyword indexes know when to rebuild."""
        self.collection()  # creates it on a fresh store
        fresh = self.client().get_collection(self.name, embedding_function=None)
        return str((fresh.metadata or {}).get("generation", "0"))

    def _bump(self) -> None:
        self.collection().modify(metadata={"generation": uuid.uuid4().hex})

    def add(self, ids: list[str], embeddings: Any, documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        collection = self.collection()
        step = max(1, min(5000, self.client().get_max_batch_size()))
        for i in range(0, len(ids), step):
            collection.upsert(
                ids=ids[i : i + step], embeddings=embeddings[i : i + step],
                documents=documents[i : i + step], metadatas=metadatas[i : i + step],
            )
        if ids:
            self._bump()

    def delete(self, where: dict[str, Any]) -> None:
        self.collection().delete(where=where)
        self._bump()

    def get(self, *, ids: list[str] | None = None, where: dict[str, Any] | None = None,
            include: tuple[str, ...] = ("metadatas",), limit: int | None = None) -> dict[str, Any]:
        return self.collection().get(ids=ids, where=where or None, include=list(include), limit=limit)

    def query(self, embedding: Any, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, str, dict[str, Any], float]]:
        """Nearest chunks: (id, document, metadata, cosine similarity), best first."""
        collection = self.collection()
        n = min(n, collection.count())
        if n <= 0:
            return []
        res = collection.query(query_embeddings=[embedding], n_results=n, where=where or None,
                               include=["documents", "metadatas", "distances"])
        return [(i, d, m or {}, 1.0 - float(dist)) for i, d, m, dist in
                zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])]

    def count(self) -> int:
        return self.collection().count()

    def drop(self) -> None:
        """Delete the whole index (tests and benchmarks)."""
        self.client().delete_collection(self.name)
        self._collection = None
