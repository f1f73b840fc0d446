"""The Chroma side of the knowledge base: embedded under the data folder, or a Chroma server.

One Chroma collection holds every knowledge-base collection; the user's collection name is a
metadata field, so a question can search one collection or all of them with a `where` filter.
The Chroma collection is named after the embedding model: vectors of two models never mix, and
switching models starts a fresh index (re-ingest to fill it). We always pass vectors ourselves,
so Chroma's default embedding function (which downloads a model) is never used.

A Chroma server can go away or stall at any time: every request is bounded by
`knowledge.chroma_timeout_s`, a failed one is a `StoreUnavailable` naming the server, and the
next call simply tries again (the HTTP client reconnects), so the app recovers on its own when
the server is back (or, if it came back without our collection, with an empty index).
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memory.knowledge.settings import Knowledge

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The Chroma server cannot be reached or did not answer in time; the message says which."""


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
                    self._client = self._http_client(chromadb, settings)
                else:
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            return self._client

    def _http_client(self, chromadb: Any, settings: Any) -> Any:
        import httpx

        limit = self.config.chroma_timeout_s
        timeout = httpx.Timeout(limit, connect=min(limit, 5.0))
        try:
            # chromadb's HTTP session has no timeout at all (httpx timeout=None), and its
            # constructor already talks to the server: probe with our limit first, so that a
            # stalled server fails here instead of hanging the constructor.
            httpx.get(f"http://{self.config.chroma_host}:{self.config.chroma_port}/api/v2/heartbeat", timeout=timeout).raise_for_status()
            client = chromadb.HttpClient(host=self.config.chroma_host, port=self.config.chroma_port, settings=settings)
        except Exception as exc:  # connection refused, DNS, TLS, a stall: one readable line
            raise StoreUnavailable(f"cannot reach the {self.where}: {exc or type(exc).__name__}") from None
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = timeout  # every later request; tests/test_faults_services.py checks it holds
        else:  # a chromadb release that moved it: requests then wait as long as the server does
            log.warning("cannot bound Chroma server requests to %g s with this chromadb version", limit)
        return client

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Transport failures of a server store as one `StoreUnavailable` line (the embedded
        store raises none of these), and a collection that vanished under us as one too."""
        import httpx
        from chromadb.errors import NotFoundError

        try:
            yield
        except NotFoundError:
            # Deleted by someone else, or a server that came back with empty data: forget the
            # stale handle so the next call creates the collection afresh.
            self._collection = None
            raise StoreUnavailable(
                f"the knowledge index {self.name!r} is gone from the {self.where}; it starts empty on the next call (re-ingest to fill it)"
            ) from None
        except httpx.TimeoutException:
            raise StoreUnavailable(
                f"the {self.where} did not answer within {self.config.chroma_timeout_s:g} s (knowledge.chroma_timeout_s)"
            ) from None
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"the {self.where} is unreachable ({type(exc).__name__}: {exc})") from None

    def collection(self) -> Any:
        if self._collection is None:
            client = self.client()
            with self._reachable():
                self._collection = client.get_or_create_collection(
                    self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}, metadata={"generation": "0"}
                )
        return self._collection

    def generation(self) -> str:
        """Changes on every write (by any process), so keyword indexes know when to rebuild."""
        self.collection()  # creates it on a fresh store
        with self._reachable():
            fresh = self.client().get_collection(self.name, embedding_function=None)
        return str((fresh.metadata or {}).get("generation", "0"))

    def _bump(self) -> None:
        with self._reachable():
            self.collection().modify(metadata={"generation": uuid.uuid4().hex})

    def add(self, ids: list[str], embeddings: Any, documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        collection = self.collection()
        with self._reachable():
            step = max(1, min(5000, self.client().get_max_batch_size()))
            for i in range(0, len(ids), step):
                collection.upsert(
                    ids=ids[i : i + step], embeddings=embeddings[i : i + step],
                    documents=documents[i : i + step], metadatas=metadatas[i : i + step],
                )
        if ids:
            self._bump()

    def delete(self, where: dict[str, Any]) -> None:
        with self._reachable():
            self.collection().delete(where=where)
        self._bump()

    def get(self, *, ids: list[str] | None = None, where: dict[str, Any] | None = None,
            include: tuple[str, ...] = ("metadatas",), limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
        collection = self.collection()
        with self._reachable():
            return collection.get(ids=ids, where=where or None, include=list(include), limit=limit, offset=offset)

    def query(self, embedding: Any, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, str, dict[str, Any], float]]:
        """Nearest chunks: (id, document, metadata, cosine similarity), best first."""
        collection = self.collection()
        with self._reachable():
            n = min(n, collection.count())
            if n <= 0:
                return []
            res = collection.query(query_embeddings=[embedding], n_results=n, where=where or None,
                                   include=["documents", "metadatas", "distances"])
        return [(i, d, m or {}, 1.0 - float(dist)) for i, d, m, dist in
                zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])]

    def count(self) -> int:
        collection = self.collection()
        with self._reachable():
            return collection.count()

    def drop(self) -> None:
        """Delete the whole index (tests and benchmarks)."""
        with self._reachable():
            self.client().delete_collection(self.name)
        self._collection = None
