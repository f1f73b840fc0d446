"""Where long-term memory lives: two Chroma collections (memories, notes) under the data folder.

We always pass our own embeddings (the app's offline, multilingual sentence encoder), so Chroma
never fetches its default embedding model, and an English memory is found by a Chinese question.
(LangGraph's SQLite store would be the other candidate, but its vector index needs SQLite
extension loading, which many Python builds, ours included, leave out.)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

COLLECTIONS = {"memory": "mmagent_memories", "note": "mmagent_notes"}


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
