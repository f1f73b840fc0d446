"""Per-user long-term memory: memories (facts, preferences) and Reflexion notes (what went
wrong on a task and what to do differently), in Chroma collections with our own embeddings.

Isolation: every item carries its owner's id, and every read, search and delete here filters
on it; no method takes a filter from its caller, so one user cannot reach another's items.
Notes are per user too (the safe choice for a shared deployment: a reflection can quote the
task, which may be private).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from memory.store import CollectionWriter, nearest
from multimodal.text_embeddings import SentenceEncoder

Kind = Literal["memory", "note"]
KINDS: tuple[Kind, ...] = ("memory", "note")
MAX_TEXT = 1000
DUPLICATE_SCORE = 0.95  # remembering the same fact twice updates it instead
REFRESH_S = 3600.0  # the same text remembered again after this long moves it up as newest


class MemoryItem(BaseModel):
    id: str
    kind: Kind
    text: str
    created_at: float
    score: float | None = None
    # Notes only: the task, its type, the outcome and the answer that failed.
    task: str | None = None
    task_type: str | None = None
    outcome: str | None = None
    answer: str | None = None

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _owner(user_id: str) -> str:
    if not user_id or not user_id.strip():
        raise ValueError("a user id is required for long-term memory")
    return user_id


def _where(user_id: str, **extra: str) -> dict[str, Any]:
    conditions = [{"user_id": _owner(user_id)}, *({k: v} for k, v in extra.items())]
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


def _item(kind: Kind, item_id: str, document: str, meta: dict[str, Any], distance: float | None = None) -> MemoryItem:
    fields = {k: v for k, v in meta.items() if k in MemoryItem.model_fields and k not in ("id", "kind", "text")}
    score = None if distance is None else 1.0 - float(distance)  # cosine space: distance = 1 - similarity
    return MemoryItem(id=item_id, kind=kind, text=document, score=score, **fields)


class LongTermMemory:
    """One per app. Chroma and the encoder are synchronous, so calls run in worker threads."""

    def __init__(
        self, collections: dict[str, Any] | Callable[[], dict[str, Any]], encoder: SentenceEncoder,
        redact: Callable[[str], str] | None = None, close: Callable[[], None] | None = None,
    ) -> None:
        """`collections`: the Chroma collections by kind, or a function that opens them; it is
        called once, on first use or by `prepare` (importing Chroma takes about a second, which
        an app's start-up should not wait for)."""
        self._collections = collections if isinstance(collections, dict) else None
        self._opener = None if isinstance(collections, dict) else collections
        self._open_lock = threading.Lock()
        self._writers: dict[str, CollectionWriter] = {}
        self.encoder = encoder
        # What is stored passes through `redact` first (memory.pii.mask_pii unless the user
        # turned masking off): a private number in a chat must not outlive the chat here.
        self.redact = redact or (lambda text: text)
        self._close = close  # e.g. stops the store's process (memory/store_process.py)

    @property
    def collections(self) -> dict[str, Any]:
        if self._collections is None:
            with self._open_lock:  # concurrent first uses open once
                if self._collections is None:
                    assert self._opener is not None
                    self._collections = self._opener()
        return self._collections

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def prepare(self) -> None:
        """Open the store now (blocking; e.g. in a worker thread after start-up)."""
        self.collections

    async def _collection(self, kind: Kind) -> Any:
        if self._collections is None:
            await asyncio.to_thread(self.prepare)  # never on the event loop: it imports Chroma
        return self.collections[kind]

    async def _writer(self, kind: Kind) -> CollectionWriter:
        collection = await self._collection(kind)  # no await between the check and the set below
        return self._writers.setdefault(kind, CollectionWriter(collection))

    async def _embed(self, text: str) -> np.ndarray:
        # A float32 row, not a list: Chroma takes arrays, and a list of 512 Python floats cost
        # more to build and to send to the store's process than the search itself.
        return (await asyncio.to_thread(self.encoder.encode, [text]))[0]

    # ------------------------------------------------------------ memories

    async def remember(self, user_id: str, text: str) -> MemoryItem:
        text = self.redact(" ".join(text.split()))[:MAX_TEXT]
        if not text:
            raise ValueError("nothing to remember: the text is empty")
        same = await self.search("memory", user_id, text, k=1, min_score=DUPLICATE_SCORE)
        item = MemoryItem(id=same[0].id if same else uuid.uuid4().hex[:12], kind="memory", text=text, created_at=time.time())
        if same and same[0].text == text:
            if item.created_at - same[0].created_at < REFRESH_S:
                # Stated again within the hour (a model re-remembers what it was told each turn):
                # nothing changes. A Chroma write holds the GIL for ~6 ms, stalling every request.
                return same[0].model_copy(update={"score": None})
            # Same text, same vector: only the time changes. Re-writing an unchanged vector is
            # what breaks Chroma's HNSW graph when other users hold the same one (store.nearest).
            # No `documents` either: with them and no embeddings, Chroma would embed with its
            # default model, which it downloads.
            meta = {"user_id": _owner(user_id), "created_at": item.created_at}
            await asyncio.to_thread((await self._writer("memory")).update, ids=[item.id], metadatas=[meta])
        else:
            await self._upsert(user_id, item, await self._embed(text))
        return item

    async def recall(self, user_id: str, query: str, k: int = 5, min_score: float | None = None) -> list[MemoryItem]:
        return await self.search("memory", user_id, query, k, min_score)

    async def forget(self, user_id: str, id_or_query: str, min_score: float = 0.5) -> list[MemoryItem]:
        """Delete the memory with this id, else the one that best matches the text; returns what went."""
        found = await self.get("memory", user_id, id_or_query.strip())
        if found is None:
            best = await self.search("memory", user_id, id_or_query, k=1, min_score=min_score)
            found = best[0] if best else None
        if found is None:
            return []
        await asyncio.to_thread((await self._collection("memory")).delete, ids=[found.id], where=_where(user_id))
        return [found]

    # ------------------------------------------------------------ notes

    async def add_note(
        self, user_id: str, *, task: str, reflection: str, outcome: str, task_type: str = "", answer: str = ""
    ) -> MemoryItem:
        redact = self.redact
        item = MemoryItem(
            id=uuid.uuid4().hex[:12], kind="note", text=redact(" ".join(reflection.split()))[:MAX_TEXT], created_at=time.time(),
            task=redact(task)[:MAX_TEXT], task_type=task_type, outcome=redact(outcome)[:300], answer=redact(answer)[:MAX_TEXT],
        )
        # Notes are found by their task: a new task similar to a failed one gets its lesson.
        await self._upsert(user_id, item, await self._embed(item.task or ""))
        return item

    async def relevant_notes(self, user_id: str, task: str, k: int, min_score: float, task_type: str = "") -> list[MemoryItem]:
        """Notes on similar tasks (best first), then the latest notes of the same task type."""
        if k <= 0:
            return []
        similar = await self.search("note", user_id, task, k, min_score)
        latest: list[MemoryItem] = []
        if task_type:
            latest = (await self._get("note", _where(user_id, task_type=task_type)))[:k]
        chosen = {n.id: n for n in [*similar, *latest]}
        return list(chosen.values())[:k]

    # ------------------------------------------------------------ both kinds

    async def search(self, kind: Kind, user_id: str, query: str, k: int = 5, min_score: float | None = None) -> list[MemoryItem]:
        """This user's items of `kind` most similar to `query`, best first."""
        if k <= 0 or not query.strip():
            return []
        vector = await self._embed(query)
        collection = await self._collection(kind)
        search = getattr(collection, "nearest", None)  # a store in a child process ranks there
        found = await asyncio.to_thread(search or partial(nearest, collection), vector, _where(user_id), k)
        items = [_item(kind, i, d, m, dist) for i, d, m, dist in found]
        return [i for i in items if min_score is None or (i.score is not None and i.score >= min_score)]

    async def list(self, kind: Kind, user_id: str) -> list[MemoryItem]:
        """Newest first."""
        return await self._get(kind, _where(user_id))

    async def get(self, kind: Kind, user_id: str, item_id: str) -> MemoryItem | None:
        if not item_id:
            return None
        found = await self._get(kind, _where(user_id), ids=[item_id])
        return found[0] if found else None

    async def delete(self, user_id: str, item_id: str) -> MemoryItem | None:
        """Delete this user's memory or note with `item_id`; None when the user has no such item."""
        for kind in KINDS:
            found = await self.get(kind, user_id, item_id)
            if found is not None:
                await asyncio.to_thread((await self._collection(kind)).delete, ids=[item_id], where=_where(user_id))
                return found
        return None

    async def count(self, kind: Kind) -> int:
        return await asyncio.to_thread((await self._collection(kind)).count)

    async def _get(self, kind: Kind, where: dict[str, Any], ids: list[str] | None = None) -> list[MemoryItem]:
        found = await asyncio.to_thread((await self._collection(kind)).get, ids=ids, where=where, include=["documents", "metadatas"])
        items = [_item(kind, i, d, m) for i, d, m in zip(found["ids"], found["documents"], found["metadatas"])]
        return sorted(items, key=lambda m: m.created_at, reverse=True)

    async def _upsert(self, user_id: str, item: MemoryItem, vector: np.ndarray) -> None:
        meta = {k: v for k, v in item.model_dump(exclude={"id", "kind", "text", "score"}).items() if v is not None}
        meta["user_id"] = _owner(user_id)
        writer = await self._writer(item.kind)
        await asyncio.to_thread(writer.upsert, ids=[item.id], embeddings=[vector], documents=[item.text], metadatas=[meta])
